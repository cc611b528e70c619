"""The one contract every provider adapter follows, and the facts it returns.

Adapters translate the provider's API into these plain values; `commands/` decides
what to do with them (approvals, safety backups, verification) and `bot/` renders them.
Every failure is a `ProviderError` (backupbot.errors) whose `permanent` flag says
whether asking again can help."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

# Where a restore puts the recovered state: a new branch/instance/service beside the
# current one, or over the current database in place.
Into = Literal["new", "in_place"]
OperationState = Literal["running", "succeeded", "failed"]


@dataclass(frozen=True)
class RecoveryWindow:
    """How far back the provider can restore to an arbitrary moment (PITR).

    `enabled` False means no point-in-time recovery (a free plan, or it is switched
    off); `reason` then says why in plain words. `retention_days` is the provider's
    configured window, compared with the runbook's 30 days."""

    enabled: bool
    earliest: datetime | None = None
    latest: datetime | None = None
    retention_days: float | None = None
    reason: str | None = None
    # What the provider can do instead of PITR, or extra rules ("not within 10
    # minutes of now"), each a plain sentence.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecoveryPoint:
    """A provider-side snapshot or backup that can be restored (`--snapshot ID`)."""

    id: str
    created_at: datetime
    name: str | None = None
    status: str = "available"  # the provider's word, lower-cased
    size_bytes: int | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class RestorePlan:
    """What a restore will do, known before it is asked for, shown in the request."""

    into: Into
    # What happens to the current state, in plain words ("kept as branch app-old-…",
    # "a new instance is created; the current one is untouched", "overwritten: the bot
    # takes its own safety dump first").
    current_state: str
    needs_safety_dump: bool
    estimated_minutes: float | None = None
    supported_into: tuple[Into, ...] = ("new",)


@dataclass(frozen=True)
class ProviderOperation:
    """A provider's asynchronous restore, followed by `operation_status(id)`.

    `result_host`/`result_name` name where the restored state lives (host, branch,
    instance or service), never a password; `connection_url` is how the bot connects
    to it to verify (it may hold a secret: never shown or recorded)."""

    id: str
    state: OperationState
    detail: str | None = None
    result_name: str | None = None
    result_host: str | None = None
    connection_url: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ProviderHealth:
    """Whether the API answered with the configured credential, and what it says about
    the database's backups (for status and the checklist)."""

    reachable: bool
    detail: str | None = None
    last_backup_at: datetime | None = None
    automated_backups: bool | None = None


class ProviderAdapter(Protocol):
    """One provider's recovery API for one configured database."""

    provider: str  # "neon", "supabase", "railway", "render"

    def recovery_window(self) -> RecoveryWindow: ...

    def recovery_points(self) -> list[RecoveryPoint]: ...

    def plan(self, into: Into) -> RestorePlan: ...

    def restore(
        self,
        *,
        to: datetime | None = None,
        snapshot: str | None = None,
        into: Into = "new",
        name: str | None = None,
    ) -> ProviderOperation:
        """Start a restore to the moment `to` (timezone-aware) or the snapshot/backup
        `snapshot`; `name` names what a new branch/instance/service is called."""
        ...

    def operation_status(self, operation_id: str) -> ProviderOperation: ...

    def health(self) -> ProviderHealth: ...
