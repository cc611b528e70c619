"""Restore drills: one row each, changed only by guarded updates.

A drill row is inserted `running` (with the scratch database's name, checked to be free)
before anything is created on the server, and `scratch_dropped` turns true only once the
scratch database is confirmed gone. So after a crash the table says exactly which
databases are the bot's leftovers; nothing else on the server is ever dropped.

A drill waits at stage `queued` until the process that executes it claims it (`claim`:
the stage moves on and the row names its owner), so a job delivered twice runs once;
who may take a running drill over is `storage/liveness.py`'s rule.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from backupbot.errors import NotFound
from backupbot.phrases import Phrase, as_phrase, dumps, loads
from backupbot.storage.liveness import QUEUED, STALE_AFTER
from backupbot.storage.liveness import abandoned as _abandoned
from backupbot.storage.models import DrillRow
from backupbot.storage.unit_of_work import orm_session, read_session, transaction

RUNNING, PASSED, FAILED = "running", "passed", "failed"
STARTING = "starting"  # claimed by its process, before the restore's first stage


@dataclass(frozen=True)
class DrillRecord:
    id: str
    database: str
    backup_id: str | None
    restore_id: str | None
    scratch_db: str
    scratch_dropped: bool
    status: str
    actor: str
    started_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None
    total_seconds: float | None
    rto_minutes: int
    result: dict[str, Any]
    error: str | None
    channel: str | None
    message_ts: str | None
    owner: str | None = None  # the process running it, or the queue holding it
    stage: str | None = None  # queued, starting, then the restore's stages
    reviewed_by: str | None = None  # who reviewed the finished result, and when
    reviewed_at: datetime | None = None
    target_name: str | None = None  # the `targets:` server of the scratch; None: source's
    error_phrase: Phrase = field(default_factory=Phrase)  # what front ends render; `error`
    # is its plain text

    def __post_init__(self) -> None:
        if not self.error_phrase and self.error:
            object.__setattr__(self, "error_phrase", as_phrase(self.error))

    @property
    def waiting(self) -> bool:
        """Running, but not yet claimed by the process that executes it."""
        return self.status == RUNNING and self.stage == QUEUED

    @classmethod
    def from_row(cls, row: DrillRow) -> DrillRecord:
        values = {f: getattr(row, f) for f in cls.__dataclass_fields__ if f != "error_phrase"}
        values["result"] = dict(row.result or {})
        if row.error is not None:  # stored as a phrase's JSON (older rows: plain text)
            values["error_phrase"] = loads(row.error)
            values["error"] = str(values["error_phrase"])
        return cls(**values)

    @property
    def finished(self) -> bool:
        return self.status != RUNNING

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per restore stage (download, create, restore, verify)."""
        return dict(self.result.get("timings") or {})

    @property
    def within_rto(self) -> bool | None:
        if self.total_seconds is None:
            return None
        return self.total_seconds <= self.rto_minutes * 60


def new_drill_id() -> str:
    return "d" + secrets.token_hex(4)


class DrillLog:
    """The `drills` table."""

    def __init__(self, engine: Engine, *, stale_after: timedelta = STALE_AFTER) -> None:
        self._engine = engine
        self.stale_after = stale_after

    # -- creation and transitions -------------------------------------------------------

    def create(
        self,
        drill_id: str,
        *,
        database: str,
        scratch_db: str,
        actor: str,
        rto_minutes: int,
        backup_id: str | None,
        now: datetime,
        result: dict[str, Any] | None = None,
        scratch_dropped: bool = False,
        target_name: str | None = None,
    ) -> DrillRecord | None:
        """Insert a running drill, waiting to be claimed; None when another drill of the
        database is running (a unique index over running rows decides, across
        processes). `scratch_dropped=True` when the scratch database will never be
        created (the drill cannot run), so clean-up never looks for it."""
        row = DrillRow(
            id=drill_id,
            database=database,
            backup_id=backup_id,
            scratch_db=scratch_db,
            target_name=target_name,
            scratch_dropped=scratch_dropped,
            status=RUNNING,
            actor=actor,
            started_at=now,
            heartbeat_at=now,
            rto_minutes=rto_minutes,
            result=result or {},
            stage=QUEUED,
        )
        try:
            with orm_session(self._engine) as session, session.begin_nested():
                session.add(row)
        except IntegrityError:
            return None
        return DrillRecord.from_row(row)

    def set_restore(self, drill_id: str, restore_id: str, now: datetime) -> bool:
        return self._guarded(
            drill_id, {"restore_id": restore_id, "heartbeat_at": now}, DrillRow.status == RUNNING
        )

    def hold(self, record: DrillRecord, holder: str) -> bool:
        """A queue takes a waiting drill: it becomes `holder`'s (a process, or the
        shared queue), if it still waits under the owner seen."""
        return self._guarded(
            record.id,
            {"owner": holder},
            DrillRow.status == RUNNING,
            DrillRow.stage == QUEUED,
            DrillRow.owner.is_(None) if record.owner is None else DrillRow.owner == record.owner,
        )

    def claim(self, drill_id: str, owner: str, now: datetime) -> bool:
        """The process that executes a waiting drill takes it: `queued` -> `starting`,
        owner and heartbeat its own. False if it is not waiting any more."""
        return self._guarded(
            drill_id,
            {"stage": STARTING, "owner": owner, "heartbeat_at": now},
            DrillRow.status == RUNNING,
            DrillRow.stage == QUEUED,
        )

    def heartbeat(self, drill_id: str, now: datetime, stage: str | None = None) -> bool:
        values: dict[str, Any] = {"heartbeat_at": now}
        if stage is not None:
            values["stage"] = stage
        return self._guarded(drill_id, values, DrillRow.status == RUNNING)

    def set_message(self, drill_id: str, channel: str, ts: str) -> None:
        self._guarded(drill_id, {"channel": channel, "message_ts": ts})

    def finish(
        self,
        drill_id: str,
        status: str,
        now: datetime,
        *,
        result: dict[str, Any],
        error: Phrase | str | None,
        total_seconds: float | None,
        seen: DrillRecord | None = None,
    ) -> bool:
        """Move a running drill to passed/failed. With `seen`, only if its heartbeat and
        owner are still the ones seen (a takeover: an owner that beat meanwhile keeps it)."""
        assert status in (PASSED, FAILED)
        conditions = [DrillRow.status == RUNNING]
        if seen is not None:
            conditions += [
                DrillRow.heartbeat_at == seen.heartbeat_at,
                DrillRow.owner.is_(None) if seen.owner is None else DrillRow.owner == seen.owner,
            ]
        values = {
            "status": status,
            "finished_at": now,
            "heartbeat_at": now,
            "result": result,
            "error": None if error is None else dumps(error),
            "total_seconds": total_seconds,
        }
        return self._guarded(drill_id, values, *conditions)

    def mark_dropped(self, drill_id: str) -> bool:
        """Record that the scratch database is gone (or was never ours). True once."""
        return self._guarded(
            drill_id, {"scratch_dropped": True}, DrillRow.scratch_dropped.is_(False)
        )

    def _guarded(self, drill_id: str, values: dict[str, Any], *conditions: Any) -> bool:
        with transaction(self._engine) as conn:
            result = conn.execute(
                update(DrillRow).where(DrillRow.id == drill_id, *conditions).values(**values)
            )
        return result.rowcount == 1

    # -- queries ------------------------------------------------------------------------

    def get(self, drill_id: str) -> DrillRecord:
        with read_session(self._engine) as session:
            row = session.get(DrillRow, drill_id)
            if row is None:
                raise NotFound(f"There is no restore drill with id {drill_id!r}.")
            return DrillRecord.from_row(row)

    def recent(self, database: str | None = None, limit: int = 6) -> list[DrillRecord]:
        """Newest first."""
        stmt = select(DrillRow).order_by(DrillRow.started_at.desc()).limit(limit)
        if database is not None:
            stmt = stmt.where(DrillRow.database == database)
        return self._all(stmt)

    def since(self, since: datetime, database: str | None = None) -> list[DrillRecord]:
        """Drills started at or after `since`, oldest first."""
        stmt = select(DrillRow).where(DrillRow.started_at >= since)
        if database is not None:
            stmt = stmt.where(DrillRow.database == database)
        return self._all(stmt.order_by(DrillRow.started_at, DrillRow.id))

    def latest(self, database: str, *, finished: bool = False) -> DrillRecord | None:
        """The newest drill of `database`; with `finished`, the one that finished last."""
        stmt = select(DrillRow).where(DrillRow.database == database)
        if finished:
            stmt = stmt.where(DrillRow.status != RUNNING).order_by(DrillRow.finished_at.desc())
        else:
            stmt = stmt.order_by(DrillRow.started_at.desc())
        return self._first(stmt.limit(1))

    def mark_reviewed(self, drill_id: str, user: str, now: datetime) -> bool:
        """Record `user`'s review of the finished drill: True for exactly one reviewer."""
        return self._guarded(
            drill_id,
            {"reviewed_by": user, "reviewed_at": now},
            DrillRow.status != RUNNING,
            DrillRow.reviewed_by.is_(None),
        )

    def latest_passed(self, database: str) -> DrillRecord | None:
        """The drill of `database` that passed last."""
        stmt = select(DrillRow).where(DrillRow.database == database, DrillRow.status == PASSED)
        return self._first(stmt.order_by(DrillRow.finished_at.desc()).limit(1))

    def running(
        self, database: str, now: datetime, is_dead: Callable[[str | None], bool]
    ) -> DrillRecord | None:
        """A drill of `database` that is running (or waiting) in a live process."""
        stmt = select(DrillRow).where(DrillRow.database == database, DrillRow.status == RUNNING)
        alive = [r for r in self._all(stmt) if not self._abandoned(r, now, is_dead)]
        return alive[0] if alive else None

    def abandoned(self, now: datetime, is_dead: Callable[[str | None], bool]) -> list[DrillRecord]:
        """Running drills whose process stopped (`storage/liveness.py`): a stale
        heartbeat, or an owner `is_dead` says is gone."""
        running = self._all(select(DrillRow).where(DrillRow.status == RUNNING))
        return [r for r in running if self._abandoned(r, now, is_dead)]

    def waiting(self) -> list[DrillRecord]:
        """Drills no process has claimed yet, oldest first."""
        return self._all(
            select(DrillRow)
            .where(DrillRow.status == RUNNING, DrillRow.stage == QUEUED)
            .order_by(DrillRow.started_at)
        )

    def _abandoned(
        self, r: DrillRecord, now: datetime, is_dead: Callable[[str | None], bool]
    ) -> bool:
        return _abandoned(r.stage, r.owner, r.heartbeat_at, now, is_dead, self.stale_after)

    def undropped(self) -> list[DrillRecord]:
        """Finished drills whose scratch database is not confirmed gone."""
        return self._all(
            select(DrillRow)
            .where(DrillRow.scratch_dropped.is_(False), DrillRow.status != RUNNING)
            .order_by(DrillRow.started_at)
        )

    def _first(self, stmt: Any) -> DrillRecord | None:
        with read_session(self._engine) as session:
            row = session.scalars(stmt).first()
            return DrillRecord.from_row(row) if row else None

    def _all(self, stmt: Any) -> list[DrillRecord]:
        with read_session(self._engine) as session:
            return [DrillRecord.from_row(r) for r in session.scalars(stmt)]
