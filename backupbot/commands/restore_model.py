"""The restore's vocabulary, shared by the request side (`restore.py`), the runner and
drills: usage, the bot's actor name, stages, progress, incident records and the RTO."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backupbot.settings import DatabaseSettings, RestoreSettings
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.restores import RestoreRecord

RESTORE_USAGE = "restore"  # the registry command whose usage a refusal shows
BOT_ACTOR = "backupbot"
SAFETY_LABEL = "pre-restore"
STAGES = ("download", "safety", "create", "restore", "verify")


@dataclass(frozen=True)
class RestoreProgress:
    """A stage starting; `timings` holds the seconds each finished stage took."""

    restore_id: str
    stage: str
    timings: dict[str, float]
    safety_backup_id: str | None = None
    detail: str | None = None  # a provider restore: what its operation says now


ProgressListener = Callable[[RestoreProgress], None]


def record_incident(
    incidents: IncidentLog,
    at: datetime,
    actor: str,
    action: str,
    outcome: str,
    database: str | None,
    record: RestoreRecord | None,
    **details: Any,
) -> None:
    """One incident record about a restore; empty details are left out."""
    if record is not None:
        details = {"restore_id": record.id, "target_name": record.target_name, **details}
    incidents.record(
        at=at,
        actor=actor,
        action=action,
        outcome=outcome,
        database=database,
        backup_id=(record.backup_id or None) if record else None,
        details={k: v for k, v in details.items() if v is not None},
    )


def rto_minutes(
    databases: dict[str, DatabaseSettings], settings: RestoreSettings, name: str
) -> int:
    """The RTO of database `name`: its own, else the restore default."""
    db = databases.get(name)
    return (db.rto_minutes if db else None) or settings.rto_minutes
