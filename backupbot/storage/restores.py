"""Restore requests: one row each, changed only by guarded updates.

Every transition names the state it expects (`WHERE id = :id AND status = 'pending'`, and
for approvals `AND approval_count = :seen`) and reports whether exactly one row changed.
Two approvers clicking at once, a double click or a Slack retry therefore move a request
once; the losers learn they lost and re-read.

A running restore waits at stage `queued` until the process that executes it claims it
(`claim`: the stage moves on and the row names its owner), so a job delivered twice runs
once; who may take a running restore over is `storage/liveness.py`'s rule.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from backupbot.errors import NotFound, RestoreConflict
from backupbot.storage.liveness import QUEUED, STALE_AFTER
from backupbot.storage.liveness import abandoned as _abandoned
from backupbot.storage.models import BackupRow, RestoreRow
from backupbot.storage.restore_record import (  # re-exported: the record and its states
    CANCELLED,
    DENIED,
    DRILL,
    EXPIRED,
    FAILED,
    MODES,
    OPEN,
    PENDING,
    PROVIDER_SOURCE,
    RUNNING,
    STARTING,
    SUCCEEDED,
    NewRestore,
    ProviderSource,
    RestoreRecord,
    new_restore_id,
    source_columns,
)
from backupbot.storage.unit_of_work import orm_session, read_session, transaction

__all__ = [
    "CANCELLED",
    "DENIED",
    "DRILL",
    "EXPIRED",
    "FAILED",
    "MODES",
    "OPEN",
    "PENDING",
    "PROVIDER_SOURCE",
    "RUNNING",
    "STARTING",
    "SUCCEEDED",
    "NewRestore",
    "ProviderSource",
    "RestoreRecord",
    "RestoreRequests",
    "new_restore_id",
]


class RestoreRequests:
    def __init__(self, engine: Engine, *, stale_after: timedelta = STALE_AFTER) -> None:
        self._engine = engine
        self._stale_after = stale_after

    # -- creation -------------------------------------------------------------------------

    def create(self, new: NewRestore, now: datetime) -> RestoreRecord:
        """Insert a pending request (or, for break-glass and drills, a running one).

        Raises `RestoreConflict` when another request for the same target is open. An open
        request past its expiry, or a running one whose heartbeat went stale, no longer
        holds the target: it is closed (expired / failed) and the insert retried once.
        """
        running = new.break_glass or new.mode == DRILL
        with transaction(self._engine) as conn:
            # Lock the backup against retention's claim for as long as this transaction
            # (the caller's unit of work) lasts; see `BackupCatalog.claim_for_deletion`.
            status = conn.execute(
                select(BackupRow.status).where(BackupRow.id == new.backup_id).with_for_update()
            ).scalar()
            if status is not None and status != "succeeded":
                raise NotFound(
                    f"Backup {new.backup_id} is {status} (retention is removing it); pick "
                    "another backup."
                )
            return self._insert(new, now, running)

    def _insert(self, new: NewRestore, now: datetime, running: bool) -> RestoreRecord:
        for _attempt in range(2):
            row = RestoreRow(
                id=new_restore_id(),
                database=new.database,
                backup_id=new.backup_id,
                mode=new.mode,
                target_db=new.target_db,
                target_where=new.target_where,
                target_name=new.target_name,
                target_lock=new.target_where,
                status=RUNNING if running else PENDING,
                requester=new.requester,
                reason=new.reason,
                required_approvals=0 if running else new.required_approvals,
                approval_count=0,
                approvals=[],
                policy=[] if running else new.policy,
                reminders_sent=0,
                created_at=now,
                expires_at=new.expires_at,
                preview=new.preview,
                break_glass=new.break_glass,
                announce_pending=new.break_glass,
                stage=QUEUED if running else None,
                heartbeat_at=now if running else None,
                started_at=now if running else None,
                decided_by=new.requester if running else None,
                decided_at=now if running else None,
                result={},
                **source_columns(new),
            )
            try:
                with orm_session(self._engine) as session, session.begin_nested():
                    session.add(row)
                return RestoreRecord.from_row(row)
            except IntegrityError:
                current = self.open_for_target(new.target_where)
                if current is None:
                    continue
                if current.status == PENDING and current.expires_at <= now:
                    self.close_pending(current.id, EXPIRED, "backupbot", now)
                    continue
                raise RestoreConflict(
                    f"{new.target_db} ({new.target_where})",
                    current.id,
                    current.requester,
                    "pending approval" if current.status == PENDING else "running",
                ) from None
        raise RestoreConflict(new.target_where, "?", "another process", "open")

    # -- transitions ----------------------------------------------------------------------

    def add_approval(
        self, restore_id: str, user: str, now: datetime, seen: RestoreRecord, stage: int = 0
    ) -> bool:
        """Record `user`'s approval in `stage` on top of the state `seen`; when it is the
        last one needed the request moves to running in the same update. True if it took."""
        count = seen.approval_count + 1
        approval = {"user": user, "at": now.isoformat(), "stage": stage}
        values: dict[str, Any] = {
            "approval_count": count,
            "approvals": [*seen.approvals, approval],
        }
        if count >= seen.required_approvals:
            values.update(
                status=RUNNING,
                decided_by=user,
                decided_at=now,
                started_at=now,
                heartbeat_at=now,
                stage=QUEUED,
            )
        return self._guarded(
            restore_id,
            values,
            RestoreRow.status == PENDING,
            RestoreRow.approval_count == seen.approval_count,
            RestoreRow.expires_at > now,
        )

    def mark_reminded(self, seen: RestoreRecord, sent: int, now: datetime) -> bool:
        """Set the count of expiry reminders on the pending request as `seen` to `sent`:
        True for exactly one caller, so each reminder is posted once whoever sweeps."""
        return self._guarded(
            seen.id,
            {"reminders_sent": sent},
            RestoreRow.status == PENDING,
            RestoreRow.reminders_sent == seen.reminders_sent,
            RestoreRow.expires_at > now,
        )

    def pending(self) -> list[RestoreRecord]:
        """Requests waiting for approval, oldest first."""
        return self._all(
            select(RestoreRow).where(RestoreRow.status == PENDING).order_by(RestoreRow.created_at)
        )

    def close_pending(self, restore_id: str, status: str, user: str, now: datetime) -> bool:
        """Deny, cancel or expire a pending request; frees the target."""
        assert status in (DENIED, CANCELLED, EXPIRED)
        return self._guarded(
            restore_id,
            {"status": status, "decided_by": user, "decided_at": now, "target_lock": None},
            RestoreRow.status == PENDING,
        )

    def hold(self, record: RestoreRecord, holder: str) -> bool:
        """A queue takes a waiting restore: it becomes `holder`'s (a process, or the
        shared queue), if it still waits under the owner seen."""
        return self._guarded(
            record.id,
            {"owner": holder},
            RestoreRow.status == RUNNING,
            RestoreRow.stage == QUEUED,
            RestoreRow.owner.is_(None)
            if record.owner is None
            else RestoreRow.owner == record.owner,
        )

    def claim(self, restore_id: str, owner: str, now: datetime) -> bool:
        """The process that executes a waiting restore takes it: `queued` -> `starting`,
        owner and heartbeat its own. False if it is not waiting any more (another worker
        has it, or it was taken over): then nothing may be done to it."""
        return self._guarded(
            restore_id,
            {"stage": STARTING, "owner": owner, "heartbeat_at": now},
            RestoreRow.status == RUNNING,
            RestoreRow.stage == QUEUED,
        )

    def set_message(self, restore_id: str, channel: str, ts: str) -> None:
        self._guarded(restore_id, {"channel": channel, "message_ts": ts})

    def progress(self, restore_id: str, stage: str, now: datetime, **values: Any) -> None:
        self._guarded(
            restore_id,
            {"stage": stage, "heartbeat_at": now, **values},
            RestoreRow.status == RUNNING,
        )

    def heartbeat(self, restore_id: str, now: datetime) -> bool:
        return self._guarded(restore_id, {"heartbeat_at": now}, RestoreRow.status == RUNNING)

    def finish(
        self,
        restore_id: str,
        status: str,
        now: datetime,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        seen: RestoreRecord | None = None,
    ) -> bool:
        """End a running restore. With `seen`, only if its heartbeat and owner are still
        the ones seen (a takeover: an owner that beat meanwhile keeps it)."""
        assert status in (SUCCEEDED, FAILED)
        values: dict[str, Any] = {
            "status": status,
            "finished_at": now,
            "heartbeat_at": now,
            "target_lock": None,
            "error": error,
        }
        if result is not None:
            values["result"] = result
        conditions = [RestoreRow.status == RUNNING]
        if seen is not None:
            conditions += [
                RestoreRow.heartbeat_at.is_(None)
                if seen.heartbeat_at is None
                else RestoreRow.heartbeat_at == seen.heartbeat_at,
                RestoreRow.owner.is_(None)
                if seen.owner is None
                else RestoreRow.owner == seen.owner,
            ]
        return self._guarded(restore_id, values, *conditions)

    def mark_reviewed(self, restore_id: str, user: str, now: datetime) -> bool:
        """The after-the-fact review of a break-glass restore (which nobody approved
        beforehand, so its approval columns are free): `user` becomes its one approval.
        True for exactly one caller."""
        return self._guarded(
            restore_id,
            {"approval_count": 1, "approvals": [{"user": user, "at": now.isoformat()}]},
            RestoreRow.break_glass.is_(True),
            RestoreRow.approval_count == 0,
        )

    def break_glass_restores(
        self, *, reviewed: bool | None = None, database: str | None = None
    ) -> list[RestoreRecord]:
        """Break-glass restores, oldest first: all, or only the (un)reviewed ones."""
        stmt = select(RestoreRow).where(RestoreRow.break_glass.is_(True))
        if reviewed is not None:
            stmt = stmt.where(
                RestoreRow.approval_count > 0 if reviewed else RestoreRow.approval_count == 0
            )
        if database is not None:
            stmt = stmt.where(RestoreRow.database == database)
        return self._all(stmt.order_by(RestoreRow.created_at))

    def mark_announced(self, restore_id: str) -> bool:
        """Claim the break-glass notice (True for exactly one caller)."""
        return self._guarded(
            restore_id, {"announce_pending": False}, RestoreRow.announce_pending.is_(True)
        )

    def unmark_announced(self, restore_id: str) -> None:
        """Give the claim back when the notice could not be posted."""
        self._guarded(restore_id, {"announce_pending": True})

    def _guarded(self, restore_id: str, values: dict[str, Any], *conditions: Any) -> bool:
        with transaction(self._engine) as conn:
            result = conn.execute(
                update(RestoreRow).where(RestoreRow.id == restore_id, *conditions).values(**values)
            )
        return result.rowcount == 1

    # -- queries --------------------------------------------------------------------------

    def get(self, restore_id: str) -> RestoreRecord:
        with read_session(self._engine) as session:
            row = session.get(RestoreRow, restore_id)
            if row is None:
                raise NotFound(f"There is no restore request with id {restore_id!r}.")
            return RestoreRecord.from_row(row)

    def open_for_target(self, target_where: str) -> RestoreRecord | None:
        return self._first(select(RestoreRow).where(RestoreRow.target_lock == target_where))

    def due_to_expire(self, now: datetime) -> list[RestoreRecord]:
        return self._all(
            select(RestoreRow).where(RestoreRow.status == PENDING, RestoreRow.expires_at <= now)
        )

    @property
    def stale_after(self) -> timedelta:
        return self._stale_after

    def abandoned(
        self, now: datetime, is_dead: Callable[[str | None], bool]
    ) -> list[RestoreRecord]:
        """Running restores whose process stopped (`storage/liveness.py`): a stale
        heartbeat, or an owner `is_dead` says is gone."""
        running = self._all(select(RestoreRow).where(RestoreRow.status == RUNNING))
        return [
            r
            for r in running
            if _abandoned(r.stage, r.owner, r.heartbeat_at, now, is_dead, self._stale_after)
        ]

    def waiting(self) -> list[RestoreRecord]:
        """Approved restores (not drills' restores) no process has claimed, oldest first."""
        return self._all(
            select(RestoreRow)
            .where(
                RestoreRow.status == RUNNING,
                RestoreRow.stage == QUEUED,
                RestoreRow.mode != DRILL,
            )
            .order_by(RestoreRow.decided_at)
        )

    def unannounced(self) -> list[RestoreRecord]:
        return self._all(
            select(RestoreRow)
            .where(RestoreRow.announce_pending.is_(True))
            .order_by(RestoreRow.created_at)
        )

    def recent(self, database: str | None = None, limit: int = 20) -> list[RestoreRecord]:
        stmt = select(RestoreRow).order_by(RestoreRow.created_at.desc()).limit(limit)
        if database:
            stmt = stmt.where(RestoreRow.database == database)
        return self._all(stmt)

    def latest_in_place(self, database: str) -> RestoreRecord | None:
        """The newest succeeded restore that overwrote `database` itself."""
        mine = (RestoreRow.database == database, RestoreRow.mode == "in_place")
        done = select(RestoreRow).where(*mine, RestoreRow.status == SUCCEEDED)
        return self._first(done.order_by(RestoreRow.finished_at.desc()))

    def test_restores(self, database: str, limit: int = 50) -> list[RestoreRecord]:
        """Succeeded restores of `database` that tested a backup without touching it: a
        drill's, or one into a configured target (staging). Newest first."""
        stmt = (
            select(RestoreRow)
            .where(RestoreRow.database == database, RestoreRow.status == SUCCEEDED)
            .where((RestoreRow.mode == DRILL) | RestoreRow.target_name.is_not(None))
            .order_by(RestoreRow.finished_at.desc())
            .limit(limit)
        )
        return self._all(stmt)

    def _first(self, stmt: Any) -> RestoreRecord | None:
        with read_session(self._engine) as session:
            row = session.scalars(stmt).first()
            return RestoreRecord.from_row(row) if row else None

    def _all(self, stmt: Any) -> list[RestoreRecord]:
        with read_session(self._engine) as session:
            return [RestoreRecord.from_row(r) for r in session.scalars(stmt)]
