"""A restore request as the rest of the bot sees it (`RestoreRecord`), a new one to
insert (`NewRestore`), and the states a request moves through. `storage/restores.py`
changes them, only by guarded updates."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backupbot.storage.models import RestoreRow

PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
DENIED, CANCELLED, EXPIRED = "denied", "cancelled", "expired"
OPEN = (PENDING, RUNNING)
MODES = ("new", "into", "in_place", "drill")
DRILL = "drill"  # a restore drill's scratch restore: running at once, no approval
STARTING = "starting"  # claimed by its process, before the first stage
BACKUP_SOURCE, PROVIDER_SOURCE = "backup", "provider"  # what a restore restores


@dataclass(frozen=True)
class RestoreRecord:
    id: str
    database: str
    backup_id: str
    mode: str
    target_db: str
    target_where: str
    status: str
    requester: str
    reason: str | None
    required_approvals: int
    approval_count: int
    approvals: list[dict[str, Any]]
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    channel: str | None
    message_ts: str | None
    preview: dict[str, Any]
    break_glass: bool
    announce_pending: bool
    stage: str | None
    heartbeat_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    safety_backup_id: str | None
    result: dict[str, Any]
    error: str | None
    owner: str | None = None  # the process running it, or the queue holding it
    policy: list[dict[str, Any]] = field(default_factory=list)  # approval stages, as stored
    reminders_sent: int = 0  # expiry reminders posted so far
    target_name: str | None = None  # the `targets:` entry it writes; None: source's server
    source_kind: str = BACKUP_SOURCE  # or PROVIDER_SOURCE: the point/snapshot below
    provider: str | None = None
    point_at: datetime | None = None
    snapshot_id: str | None = None
    provider_into: str | None = None
    operation_id: str | None = None
    result_name: str | None = None
    result_host: str | None = None

    @classmethod
    def from_row(cls, row: RestoreRow) -> RestoreRecord:
        values = {f: getattr(row, f) for f in cls.__dataclass_fields__}
        values["approvals"] = list(row.approvals or [])
        values["policy"] = list(row.policy or [])
        values["reminders_sent"] = row.reminders_sent or 0
        values["preview"] = dict(row.preview or {})
        values["result"] = dict(row.result or {})
        values["source_kind"] = row.source_kind or BACKUP_SOURCE
        return cls(**values)

    @property
    def approvers(self) -> list[str]:
        return [a["user"] for a in self.approvals]

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def is_provider(self) -> bool:
        return self.source_kind == PROVIDER_SOURCE


@dataclass(frozen=True)
class NewRestore:
    database: str
    backup_id: str
    mode: str
    target_db: str
    target_where: str
    requester: str
    reason: str | None
    required_approvals: int
    expires_at: datetime
    preview: dict[str, Any]
    break_glass: bool = False
    policy: list[dict[str, Any]] = field(default_factory=list)  # `approval_stages.Stage`s
    target_name: str | None = None  # a `targets:` entry; None: the source's own server
    source: ProviderSource | None = None  # a provider restore (backup_id is then "")


@dataclass(frozen=True)
class ProviderSource:
    """What a provider restore restores: a point in time or a snapshot, into a new
    branch/instance/service or in place."""

    provider: str
    into: str
    point_at: datetime | None = None
    snapshot_id: str | None = None


def new_restore_id() -> str:
    return "r" + secrets.token_hex(4)


def source_columns(new: NewRestore) -> dict[str, Any]:
    """The provider columns of a new restore (migration 0014); a backup's restore has none."""
    if new.source is None:
        return {"source_kind": BACKUP_SOURCE}
    return {
        "source_kind": PROVIDER_SOURCE,
        "provider": new.source.provider,
        "provider_into": new.source.into,
        "point_at": new.source.point_at,
        "snapshot_id": new.source.snapshot_id,
    }
