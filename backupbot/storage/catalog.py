"""The backup catalog: one row per backup attempt, with guarded state changes.

Records leave this module as plain `BackupRecord` objects, so callers never hold ORM
sessions. Every transition out of `running` is a guarded update (`WHERE status =
'running'`) and acts only when exactly one row changed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backupbot.commands import humanize
from backupbot.errors import BackupAlreadyRunning, NotFound
from backupbot.storage.models import BackupRow, RestoreRow

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
DELETED = "deleted"  # retention removed the artifact and manifest; the row stays


@dataclass(frozen=True)
class BackupRecord:
    id: str
    database: str
    status: str
    actor: str
    label: str | None
    started_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None
    progress_bytes: int
    store: str
    artifact_key: str | None
    manifest_key: str | None
    location: str | None
    raw_size: int | None
    stored_size: int | None
    sha256: str | None
    compression: str | None
    server_version: str | None
    pg_dump_version: str | None
    manifest: dict[str, Any] | None
    error: str | None
    deleted_at: datetime | None = None  # set when retention deleted the artifact

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.finished_at else None

    @classmethod
    def from_row(cls, row: BackupRow) -> BackupRecord:
        return cls(**{f: getattr(row, f) for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class SuccessDetails:
    artifact_key: str
    manifest_key: str
    location: str
    raw_size: int
    stored_size: int
    sha256: str
    compression: str
    server_version: str
    pg_dump_version: str
    manifest: dict[str, Any]


def new_backup_id() -> str:
    """Eight hex characters: short enough to type in Slack, unique enough per team."""
    return secrets.token_hex(4)


class BackupCatalog:
    def __init__(self, engine: Engine, *, stale_after: timedelta = timedelta(minutes=5)) -> None:
        self._engine = engine
        self._stale_after = stale_after

    def start(
        self, database: str, actor: str, label: str | None, store: str, now: datetime
    ) -> BackupRecord:
        """Insert a running backup, or raise `BackupAlreadyRunning`.

        The unique `running_lock` column makes this atomic across threads and processes.
        A running row whose heartbeat is older than `stale_after` belongs to a process
        that died; it is marked failed and the new backup goes ahead.
        """
        for _attempt in range(2):
            row = BackupRow(
                id=new_backup_id(),
                database=database,
                status=RUNNING,
                running_lock=database,
                actor=actor,
                label=label,
                started_at=now,
                heartbeat_at=now,
                progress_bytes=0,
                store=store,
            )
            try:
                with Session(self._engine, expire_on_commit=False) as session, session.begin():
                    session.add(row)
                return BackupRecord.from_row(row)
            except IntegrityError:
                current = self.running(database)
                if current is None:
                    continue  # it finished between our insert and our look; try once more
                if now - current.heartbeat_at > self._stale_after:
                    self.fail(
                        current.id,
                        now,
                        "The process running this backup stopped before it finished.",
                    )
                    continue
                raise BackupAlreadyRunning(
                    database,
                    current.id,
                    current.actor,
                    humanize.utc(current.started_at),
                ) from None
        raise BackupAlreadyRunning(database, "?", "another process", now.strftime("%H:%M UTC"))

    def heartbeat(self, backup_id: str, now: datetime, progress_bytes: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(BackupRow)
                .where(BackupRow.id == backup_id, BackupRow.status == RUNNING)
                .values(heartbeat_at=now, progress_bytes=progress_bytes)
            )

    def succeed(self, backup_id: str, now: datetime, details: SuccessDetails) -> bool:
        return self._finish(backup_id, now, status=SUCCEEDED, error=None, **details.__dict__)

    def fail(self, backup_id: str, now: datetime, error: str) -> bool:
        return self._finish(backup_id, now, status=FAILED, error=error)

    def _finish(self, backup_id: str, now: datetime, **values: Any) -> bool:
        with self._engine.begin() as conn:
            result = conn.execute(
                update(BackupRow)
                .where(BackupRow.id == backup_id, BackupRow.status == RUNNING)
                .values(finished_at=now, heartbeat_at=now, running_lock=None, **values)
            )
        return result.rowcount == 1

    def fail_abandoned(self, now: datetime) -> list[BackupRecord]:
        """Mark running backups whose heartbeat went stale as failed (start-up clean-up)."""
        with Session(self._engine) as session:
            stale = session.scalars(
                select(BackupRow).where(
                    BackupRow.status == RUNNING,
                    BackupRow.heartbeat_at < now - self._stale_after,
                )
            ).all()
            records = [BackupRecord.from_row(r) for r in stale]
        msg = "The process running this backup stopped before it finished."
        return [r for r in records if self.fail(r.id, now, msg)]

    def get(self, backup_id: str) -> BackupRecord:
        with Session(self._engine) as session:
            row = session.get(BackupRow, backup_id)
            if row is None:
                raise NotFound(f"There is no backup with id {backup_id!r}.")
            return BackupRecord.from_row(row)

    def running(self, database: str) -> BackupRecord | None:
        return self._one(
            select(BackupRow).where(BackupRow.database == database, BackupRow.status == RUNNING)
        )

    def latest(self, database: str, status: str | None = None) -> BackupRecord | None:
        stmt = select(BackupRow).where(BackupRow.database == database)
        if status:
            stmt = stmt.where(BackupRow.status == status)
        return self._one(stmt.order_by(BackupRow.started_at.desc()).limit(1))

    def list(self, database: str | None = None, limit: int = 20) -> list[BackupRecord]:
        stmt = select(BackupRow).order_by(BackupRow.started_at.desc()).limit(limit)
        if database:
            stmt = stmt.where(BackupRow.database == database)
        with Session(self._engine) as session:
            return [BackupRecord.from_row(r) for r in session.scalars(stmt)]

    def count(self, database: str, status: str = SUCCEEDED) -> int:
        stmt = select(func.count()).where(
            BackupRow.database == database, BackupRow.status == status
        )
        with Session(self._engine) as session:
            return int(session.scalar(stmt) or 0)

    def verified(self, database: str | None = None) -> list[BackupRecord]:
        """Every succeeded backup whose artifact is still kept, oldest first."""
        stmt = select(BackupRow).where(BackupRow.status == SUCCEEDED)
        if database:
            stmt = stmt.where(BackupRow.database == database)
        stmt = stmt.order_by(BackupRow.database, BackupRow.started_at, BackupRow.id)
        with Session(self._engine) as session:
            return [BackupRecord.from_row(r) for r in session.scalars(stmt)]

    def mark_deleted(self, backup_id: str, now: datetime) -> bool:
        """Retention deleted the artifact and manifest: `succeeded` -> `deleted`.

        A guarded update; False when the row was not `succeeded` any more (another run
        got there first)."""
        with self._engine.begin() as conn:
            result = conn.execute(
                update(BackupRow)
                .where(BackupRow.id == backup_id, BackupRow.status == SUCCEEDED)
                .values(status=DELETED, deleted_at=now)
            )
        return result.rowcount == 1

    def in_use_by_restores(self) -> frozenset[str]:
        """Ids of backups an open restore or drill (pending or running) reads."""
        stmt = select(RestoreRow.backup_id).where(RestoreRow.status.in_(("pending", "running")))
        with Session(self._engine) as session:
            return frozenset(session.scalars(stmt))

    def _one(self, stmt: Any) -> BackupRecord | None:
        with Session(self._engine) as session:
            row = session.scalars(stmt).first()
            return BackupRecord.from_row(row) if row else None
