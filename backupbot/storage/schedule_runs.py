"""The ledger of scheduled runs: one row per (job, scheduled time).

Inserting the row *is* the claim: the unique (job, scheduled_for) key lets exactly one
process run a given firing, whatever the schedulers around it do. Rows are never deleted;
they are the evidence of what ran, when, how late, and with what result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from backupbot.storage.models import ScheduledRunRow
from backupbot.storage.unit_of_work import orm_session, read_session

RUNNING, DONE, FAILED, MISSED = "running", "done", "failed", "missed"
REGISTERED = "registered"  # the first time a scheduler saw the job; firings before it are not owed


@dataclass(frozen=True)
class ScheduledRun:
    id: int
    job: str
    scheduled_for: datetime
    status: str
    claimed_by: str
    started_at: datetime
    finished_at: datetime | None
    late_seconds: int
    result: dict[str, Any]

    @classmethod
    def from_row(cls, row: ScheduledRunRow) -> ScheduledRun:
        return cls(**{f: getattr(row, f) for f in cls.__dataclass_fields__})


class ScheduledRuns:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def claim(
        self,
        job: str,
        scheduled_for: datetime,
        claimed_by: str,
        now: datetime,
        *,
        status: str = RUNNING,
        result: dict[str, Any] | None = None,
    ) -> ScheduledRun | None:
        """Insert the row for this firing, or return None if another process already has."""
        row = ScheduledRunRow(
            job=job,
            scheduled_for=scheduled_for,
            status=status,
            claimed_by=claimed_by,
            started_at=now,
            finished_at=None if status == RUNNING else now,
            late_seconds=max(0, int((now - scheduled_for).total_seconds())),
            result=result or {},
        )
        try:
            with orm_session(self._engine) as session, session.begin_nested():
                session.add(row)
        except IntegrityError:
            return None
        return ScheduledRun.from_row(row)

    def finish(self, run_id: int, status: str, now: datetime, result: dict[str, Any]) -> None:
        with orm_session(self._engine) as session:
            session.execute(
                update(ScheduledRunRow)
                .where(ScheduledRunRow.id == run_id, ScheduledRunRow.status == RUNNING)
                .values(status=status, finished_at=now, result=result)
            )

    def last_scheduled_for(self, job: str) -> datetime | None:
        """The newest firing of `job` on record (run, failed or missed)."""
        stmt = (
            select(ScheduledRunRow.scheduled_for)
            .where(ScheduledRunRow.job == job)
            .order_by(ScheduledRunRow.scheduled_for.desc())
            .limit(1)
        )
        with read_session(self._engine) as session:
            return session.scalar(stmt)

    def for_job(self, job: str) -> list[ScheduledRun]:
        """Every firing of `job`, oldest first."""
        stmt = (
            select(ScheduledRunRow)
            .where(ScheduledRunRow.job == job)
            .order_by(ScheduledRunRow.scheduled_for)
        )
        with read_session(self._engine) as session:
            return [ScheduledRun.from_row(r) for r in session.scalars(stmt)]
