"""The backup catalog: one row per backup attempt, with guarded state changes.

Records leave this module as plain `BackupRecord` objects, so callers never hold ORM
sessions. Every transition out of `running` is a guarded update (`WHERE status =
'running'`) and acts only when exactly one row changed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from backupbot.errors import BackupAlreadyRunning, NotFound
from backupbot.storage.models import BackupRow, RestoreRow
from backupbot.storage.unit_of_work import orm_session, read_session, transaction

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
DELETING = "deleting"  # retention claimed it and is removing its artifact
DELETED = "deleted"  # retention removed the artifact and manifest; the row stays
OPEN_RESTORES = ("pending", "running")  # restore statuses that still read their backup
QUEUED = "queued"  # the stage of a running backup no worker has taken yet


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
    stage: str | None = None  # where a running backup is (queued, snapshot, dumping, ...)
    owner: str | None = None  # the process running it (see storage/liveness.py)
    channel: str | None = None  # its channel message, once posted
    message_ts: str | None = None

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


def _abandoned(
    r: BackupRecord, now: datetime, stale_after: timedelta, is_dead: Callable[[str | None], bool]
) -> bool:
    """A waiting backup has no heartbeat to go stale (a queue holds it): only a dead
    owner (the in-process queue's process) abandons it."""
    if r.stage == QUEUED:
        return is_dead(r.owner)
    return now - r.heartbeat_at > stale_after or is_dead(r.owner)


def new_backup_id() -> str:
    """Eight hex characters: short enough to type in Slack, unique enough per team."""
    return secrets.token_hex(4)


class BackupCatalog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def start(
        self,
        database: str,
        actor: str,
        label: str | None,
        store: str,
        now: datetime,
        *,
        owner: str | None = None,
    ) -> BackupRecord:
        """Insert a running backup, or raise `BackupAlreadyRunning`.

        The unique `running_lock` column makes this atomic across threads and processes.
        A backup whose process died is taken over first (`abandoned`, `take_over`).
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
                stage=QUEUED,
                owner=owner,
            )
            try:
                with orm_session(self._engine) as session, session.begin_nested():
                    session.add(row)
                return BackupRecord.from_row(row)
            except IntegrityError:
                current = self.running(database)
                if current is None:
                    continue  # it finished between our insert and our look; try once more
                raise BackupAlreadyRunning(
                    database, current.id, current.actor, current.started_at, current.stage
                ) from None
        raise BackupAlreadyRunning(database, "?", "another process", now)

    def abandoned(
        self,
        now: datetime,
        *,
        stale_after: timedelta,
        is_dead: Callable[[str | None], bool],
        database: str | None = None,
    ) -> list[BackupRecord]:
        """Running backups whose process stopped: heartbeat older than `stale_after`, or
        an owner `is_dead` says is gone."""
        stmt = select(BackupRow).where(BackupRow.status == RUNNING)
        if database is not None:
            stmt = stmt.where(BackupRow.database == database)
        with read_session(self._engine) as session:
            running = [BackupRecord.from_row(r) for r in session.scalars(stmt)]
        return [r for r in running if _abandoned(r, now, stale_after, is_dead)]

    def claim(self, backup_id: str, owner: str, now: datetime) -> bool:
        """A worker takes a queued backup: stage `queued` -> `starting`, owner and
        heartbeat its own. False if it is not waiting any more (taken over, or another
        worker has it): then the worker must not dump."""
        with transaction(self._engine) as conn:
            result = conn.execute(
                update(BackupRow)
                .where(
                    BackupRow.id == backup_id,
                    BackupRow.status == RUNNING,
                    BackupRow.stage == QUEUED,
                )
                .values(stage="starting", owner=owner, heartbeat_at=now)
            )
        return result.rowcount == 1

    def adopt(self, record: BackupRecord, owner: str) -> bool:
        """Make a waiting backup `owner`'s, if it is still waiting under the owner seen."""
        with transaction(self._engine) as conn:
            result = conn.execute(
                update(BackupRow)
                .where(
                    BackupRow.id == record.id,
                    BackupRow.stage == QUEUED,
                    BackupRow.status == RUNNING,
                    BackupRow.owner.is_(None)
                    if record.owner is None
                    else BackupRow.owner == record.owner,
                )
                .values(owner=owner)
            )
        return result.rowcount == 1

    def queued(self) -> list[BackupRecord]:
        """Backups waiting for a worker, oldest first."""
        stmt = (
            select(BackupRow)
            .where(BackupRow.status == RUNNING, BackupRow.stage == QUEUED)
            .order_by(BackupRow.started_at)
        )
        with read_session(self._engine) as session:
            return [BackupRecord.from_row(r) for r in session.scalars(stmt)]

    def take_over(self, record: BackupRecord, now: datetime, error: str) -> bool:
        """Fail a backup found abandoned, only if its heartbeat is still the one seen (a
        live owner that beat meanwhile keeps it)."""
        with transaction(self._engine) as conn:
            result = conn.execute(
                update(BackupRow)
                .where(
                    BackupRow.id == record.id,
                    BackupRow.status == RUNNING,
                    BackupRow.heartbeat_at == record.heartbeat_at,
                )
                .values(
                    status=FAILED, error=error, finished_at=now, heartbeat_at=now, running_lock=None
                )
            )
        return result.rowcount == 1

    def pulse(self, backup_ids: Collection[str], now: datetime) -> None:
        """The owner is alive: refresh the heartbeat of these running backups."""
        if not backup_ids:
            return
        with transaction(self._engine) as conn:
            conn.execute(
                update(BackupRow)
                .where(BackupRow.id.in_(list(backup_ids)), BackupRow.status == RUNNING)
                .values(heartbeat_at=now)
            )

    def progress(self, backup_id: str, stage: str, progress_bytes: int) -> None:
        """Where a running backup is: its stage and the bytes it has handled."""
        with transaction(self._engine) as conn:
            conn.execute(
                update(BackupRow)
                .where(BackupRow.id == backup_id, BackupRow.status == RUNNING)
                .values(stage=stage, progress_bytes=progress_bytes)
            )

    def set_message(self, backup_id: str, channel: str, ts: str) -> None:
        """Remember the backup's channel message, so a later process can correct it."""
        with transaction(self._engine) as conn:
            conn.execute(
                update(BackupRow)
                .where(BackupRow.id == backup_id)
                .values(channel=channel, message_ts=ts)
            )

    def succeed(self, backup_id: str, now: datetime, details: SuccessDetails) -> bool:
        return self._finish(backup_id, now, status=SUCCEEDED, error=None, **details.__dict__)

    def fail(self, backup_id: str, now: datetime, error: str) -> bool:
        return self._finish(backup_id, now, status=FAILED, error=error)

    def _finish(self, backup_id: str, now: datetime, **values: Any) -> bool:
        with transaction(self._engine) as conn:
            result = conn.execute(
                update(BackupRow)
                .where(BackupRow.id == backup_id, BackupRow.status == RUNNING)
                .values(finished_at=now, heartbeat_at=now, running_lock=None, **values)
            )
        return result.rowcount == 1

    def get(self, backup_id: str) -> BackupRecord:
        with read_session(self._engine) as session:
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

    def first_started(self, database: str) -> datetime | None:
        """When the first backup of `database` on record started (any outcome)."""
        stmt = select(func.min(BackupRow.started_at)).where(BackupRow.database == database)
        with read_session(self._engine) as session:
            found: datetime | None = session.scalar(stmt)
            return found

    def recent(self, database: str | None = None, limit: int = 20) -> list[BackupRecord]:
        stmt = select(BackupRow).order_by(BackupRow.started_at.desc()).limit(limit)
        if database:
            stmt = stmt.where(BackupRow.database == database)
        with read_session(self._engine) as session:
            return [BackupRecord.from_row(r) for r in session.scalars(stmt)]

    def count(self, database: str, status: str = SUCCEEDED) -> int:
        stmt = select(func.count()).where(
            BackupRow.database == database, BackupRow.status == status
        )
        with read_session(self._engine) as session:
            return int(session.scalar(stmt) or 0)

    def verified(self, database: str | None = None) -> list[BackupRecord]:
        """Every succeeded backup whose artifact is still kept, oldest first."""
        stmt = select(BackupRow).where(BackupRow.status == SUCCEEDED)
        if database:
            stmt = stmt.where(BackupRow.database == database)
        stmt = stmt.order_by(BackupRow.database, BackupRow.started_at, BackupRow.id)
        with read_session(self._engine) as session:
            return [BackupRecord.from_row(r) for r in session.scalars(stmt)]

    def stored(
        self, database: str, *, since: datetime | None = None, limit: int | None = None
    ) -> list[BackupRecord]:
        """Backups of `database` that were verified and stored (retention may have deleted
        them since), started at or after `since`, the newest `limit`; oldest first."""
        stmt = select(BackupRow).where(
            BackupRow.database == database,
            BackupRow.status.in_((SUCCEEDED, DELETING, DELETED)),
            BackupRow.stored_size.is_not(None),
            BackupRow.finished_at.is_not(None),
        )
        if since is not None:
            stmt = stmt.where(BackupRow.started_at >= since)
        stmt = stmt.order_by(BackupRow.started_at.desc(), BackupRow.id.desc()).limit(limit)
        with read_session(self._engine) as session:
            return [BackupRecord.from_row(r) for r in session.scalars(stmt)][::-1]

    def claim_for_deletion(self, backup_id: str) -> bool:
        """Retention's claim: `succeeded` -> `deleting`, only while no open restore or
        drill reads the backup. The backup row is locked first (as `lock_for_restore`
        does), so a claim and a new restore request of it never both go ahead."""
        with transaction(self._engine) as conn:
            status = conn.execute(
                select(BackupRow.status).where(BackupRow.id == backup_id).with_for_update()
            ).scalar()
            if status != SUCCEEDED:
                return False
            readers = conn.execute(
                select(func.count()).where(
                    RestoreRow.backup_id == backup_id, RestoreRow.status.in_(OPEN_RESTORES)
                )
            ).scalar()
            if readers:
                return False
            conn.execute(update(BackupRow).where(BackupRow.id == backup_id).values(status=DELETING))
        return True

    def release_deletion(self, backup_id: str) -> bool:
        """The deletion failed before anything was removed: `deleting` -> `succeeded`."""
        return self._move(backup_id, DELETING, status=SUCCEEDED)

    def mark_deleted(self, backup_id: str, now: datetime) -> bool:
        """Retention removed the artifact and manifest: `deleting` -> `deleted`."""
        return self._move(backup_id, DELETING, status=DELETED, deleted_at=now)

    def deleting(self) -> list[BackupRecord]:
        """Backups a retention run claimed and did not finish (it stopped half-way)."""
        stmt = select(BackupRow).where(BackupRow.status == DELETING).order_by(BackupRow.started_at)
        with read_session(self._engine) as session:
            return [BackupRecord.from_row(r) for r in session.scalars(stmt)]

    def lock_for_restore(self, backup_id: str) -> str | None:
        """Lock the backup row for the current transaction (a restore request being
        created); its status, or None if there is no such backup."""
        with transaction(self._engine) as conn:
            return conn.execute(
                select(BackupRow.status).where(BackupRow.id == backup_id).with_for_update()
            ).scalar()

    def _move(self, backup_id: str, from_status: str, **values: Any) -> bool:
        with transaction(self._engine) as conn:
            result = conn.execute(
                update(BackupRow)
                .where(BackupRow.id == backup_id, BackupRow.status == from_status)
                .values(**values)
            )
        return result.rowcount == 1

    def in_use_by_restores(self) -> frozenset[str]:
        """Ids of backups an open restore or drill (pending or running) reads."""
        stmt = select(RestoreRow.backup_id).where(RestoreRow.status.in_(OPEN_RESTORES))
        with read_session(self._engine) as session:
            return frozenset(session.scalars(stmt))

    def _one(self, stmt: Any) -> BackupRecord | None:
        with read_session(self._engine) as session:
            row = session.scalars(stmt).first()
            return BackupRecord.from_row(row) if row else None
