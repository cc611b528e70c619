"""Every refusal is recorded, once, the same way.

A service that refuses with context of its own (`backup.refused` with the database,
`restore.refused` with the reason given) records it with `record_refusal`; the front
ends pass every other refusal (a malformed command, an unknown database, a missing role)
to `record_unrecorded`, so whichever check raises it, the incident log has one record.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Protocol

from backupbot.errors import BackupbotError

log = logging.getLogger(__name__)


class Recorder(Protocol):
    def record(
        self,
        *,
        at: datetime,
        actor: str,
        action: str,
        outcome: str,
        database: str | None = None,
        backup_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Any: ...


def record_refusal(
    incidents: Recorder,
    err: BackupbotError,
    *,
    at: datetime,
    actor: str,
    action: str,
    database: str | None = None,
    **facts: Any,
) -> None:
    """Record `err` as a refusal: its code, plain reason and phrase, beside `facts`."""
    incidents.record(
        at=at,
        actor=actor,
        action=action,
        outcome="refused",
        database=database,
        details={**facts, **err.refusal()},
    )
    err.recorded = True


def record_unrecorded(
    incidents: Recorder, err: BackupbotError, *, at: datetime, actor: str, command: str
) -> None:
    """Record a refusal no service has recorded, as `access.denied` (an access rule
    refused it) or `command.rejected`, with the command as given (clipped). A record that
    cannot be written (the state database is away) is logged: the person still gets
    their answer."""
    if err.recorded:
        return
    action = "access.denied" if err.code.startswith("access.") else "command.rejected"
    try:
        record_refusal(incidents, err, at=at, actor=actor, action=action, command=command[:200])
    except Exception:
        log.warning("refusal of %r by %s not recorded", command[:200], actor, exc_info=True)
