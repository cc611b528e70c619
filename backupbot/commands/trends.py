"""Size and duration trends: the series `/backup status` draws as sparklines (the last
30 stored backups) and the chart draws (90 days of backups, the drills against the RTO
target). Data only; drawing is the front ends' job (bot/sparkline.py, bot/charts.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from backupbot.storage.catalog import BackupRecord
from backupbot.storage.drills import DrillRecord

SPARK_POINTS = 30  # stored backups in a sparkline
CHART_DAYS = 90  # the chart's window


@dataclass(frozen=True)
class Trend:
    """The last stored backups' sizes (bytes) and durations (seconds), oldest first."""

    sizes: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.sizes)


def trend(records: Sequence[BackupRecord], points: int = SPARK_POINTS) -> Trend:
    """The sparkline series of `records` (oldest first): the newest `points` of them."""
    kept = [r for r in records if r.stored_size is not None and r.duration is not None][-points:]
    return Trend(
        sizes=[float(r.stored_size or 0) for r in kept],
        durations=[r.duration.total_seconds() for r in kept if r.duration is not None],
    )


@dataclass(frozen=True)
class BackupPoint:
    at: datetime
    stored_size: int
    seconds: float


@dataclass(frozen=True)
class DrillPoint:
    at: datetime
    seconds: float
    passed: bool


@dataclass(frozen=True)
class ChartData:
    """What one database's chart shows: its backups and finished drills since `since`."""

    database: str
    since: datetime
    until: datetime
    rto_minutes: int
    backups: list[BackupPoint]
    drills: list[DrillPoint]


def chart_since(now: datetime) -> datetime:
    return now - timedelta(days=CHART_DAYS)


def chart_data(
    database: str,
    now: datetime,
    backups: Sequence[BackupRecord],
    drills: Sequence[DrillRecord],
    rto_minutes: int,
) -> ChartData:
    """The chart's series: stored backups and drills with a time, in the 90-day window."""
    since = chart_since(now)
    points = [
        BackupPoint(r.started_at, r.stored_size, r.duration.total_seconds())
        for r in backups
        if r.stored_size is not None and r.duration is not None and since <= r.started_at <= now
    ]
    tried = [
        DrillPoint(d.started_at, d.total_seconds, d.passed)
        for d in drills
        if d.total_seconds is not None and since <= d.started_at <= now
    ]
    return ChartData(database, since, now, rto_minutes, points, tried)
