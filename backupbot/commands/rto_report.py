"""`backupbot report rto`: the RTO record for auditors. Every finished restore drill since
a date with its result, duration against the target it was judged by, and who reviewed
it; then per database the drills, passes, failures, median and worst recovery time.

A pure function of the drill records and the configured targets.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backupbot.commands.rto_record import PASS, result_of, within_target
from backupbot.storage.drills import DrillRecord

DEFAULT_DAYS = 90


def default_since(now: datetime) -> datetime:
    """90 days before `now`."""
    return now - timedelta(days=DEFAULT_DAYS)


@dataclass(frozen=True)
class RtoRow:
    """One drill as the auditors' table shows it."""

    drill_id: str
    database: str
    started_at: datetime
    result: str  # Pass | Fail
    seconds: float | None  # None: it did not restore
    target_minutes: int  # the target it was judged against
    within_target: bool
    reviewed_by: str | None
    reviewed_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "drill_id": self.drill_id,
            "database": self.database,
            "started_at": self.started_at.isoformat(),
            "result": self.result,
            "duration_seconds": self.seconds,
            "target_minutes": self.target_minutes,
            "within_target": self.within_target,
            "reviewed_by": self.reviewed_by,
            "reviewed_at": self.reviewed_at.isoformat() if self.reviewed_at else None,
        }


@dataclass(frozen=True)
class RtoSummary:
    """One database over the report's period. Median and worst are over the drills that
    restored (a drill that did not restore has no recovery time)."""

    database: str
    target_minutes: int | None  # configured now (None: a database no longer configured)
    drills: int
    passed: int
    failed: int
    median_seconds: float | None
    worst_seconds: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "target_minutes": self.target_minutes,
            "drills": self.drills,
            "passed": self.passed,
            "failed": self.failed,
            "median_seconds": self.median_seconds,
            "worst_seconds": self.worst_seconds,
        }


@dataclass(frozen=True)
class RtoReport:
    since: datetime
    at: datetime
    rows: tuple[RtoRow, ...]  # oldest first
    summaries: tuple[RtoSummary, ...]  # configured databases first, in their order

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "at": self.at.isoformat(),
            "drills": [r.as_json() for r in self.rows],
            "databases": [s.as_json() for s in self.summaries],
        }


def _row(r: DrillRecord) -> RtoRow:
    return RtoRow(
        drill_id=r.id,
        database=r.database,
        started_at=r.started_at,
        result=result_of(r),
        seconds=r.total_seconds,
        target_minutes=r.rto_minutes,
        within_target=within_target(r),
        reviewed_by=r.reviewed_by,
        reviewed_at=r.reviewed_at,
    )


def _summary(database: str, target: int | None, rows: Sequence[RtoRow]) -> RtoSummary:
    mine = [r for r in rows if r.database == database]
    times = [r.seconds for r in mine if r.seconds is not None]
    passed = sum(r.result == PASS for r in mine)
    return RtoSummary(
        database=database,
        target_minutes=target,
        drills=len(mine),
        passed=passed,
        failed=len(mine) - passed,
        median_seconds=statistics.median(times) if times else None,
        worst_seconds=max(times) if times else None,
    )


def rto_report(
    records: Sequence[DrillRecord],
    targets: Mapping[str, int],
    since: datetime,
    at: datetime,
    database: str | None = None,
) -> RtoReport:
    """The report over `records` (running drills are left out). `targets`: each configured
    database's RTO now, in configuration order; `database` limits it to one."""
    rows = tuple(
        _row(r)
        for r in sorted(records, key=lambda r: (r.started_at, r.id))
        if r.finished and database in (None, r.database)
    )
    names = [n for n in targets if database in (None, n)]
    names += sorted({r.database for r in rows} - set(names))
    return RtoReport(
        since=since,
        at=at,
        rows=rows,
        summaries=tuple(_summary(n, targets.get(n), rows) for n in names),
    )
