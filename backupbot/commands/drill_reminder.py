"""The reminder before a scheduled restore drill: `drill.remind_days_before` days ahead,
one message saying what each database's drill will restore, where, and how long it
should take (from its last passed drills). Claimed in `scheduled_runs` under the job
name `drill-reminder` and the drill's firing, so one process posts it once."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from backupbot.clock import Clock
from backupbot.commands.drill import DrillService
from backupbot.commands.schedule import ScheduledJob
from backupbot.settings import DatabaseSettings
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.schedule_runs import ScheduledRuns

REMINDER_JOB = "drill-reminder"
EXPECTED_FROM = 3  # the last passed drills an expected duration is taken from


@dataclass(frozen=True)
class DrillPlan:
    """One database's coming drill: the backup it would restore now, the server it
    restores on, and the expected duration (median of its last passed drills)."""

    database: str
    server: str  # host:port (and its target's name), never credentials
    backup_id: str | None
    backup_taken: datetime | None
    expected_seconds: float | None
    rto_minutes: int


@dataclass(frozen=True)
class DrillReminder:
    firing: datetime
    plans: list[DrillPlan]


class DrillReminders:
    def __init__(
        self,
        *,
        drills: DrillService,
        databases: list[DatabaseSettings],
        runs: ScheduledRuns,
        incidents: IncidentLog,
        clock: Clock,
        job: ScheduledJob,
        ahead: timedelta,
        claimed_by: str,
    ) -> None:
        self._drills = drills
        self._databases = databases
        self._runs = runs
        self._incidents = incidents
        self._clock = clock
        self._job = job
        self._ahead = ahead
        self._claimed_by = claimed_by

    def due(self) -> DrillReminder | None:
        """The reminder to post now, claimed; None when none is due or another process
        has it (or `ahead` is zero: reminders are off)."""
        now = self._clock.now()
        firing = self._job.next_fire(now)
        if not self._ahead or firing is None or firing - now > self._ahead:
            return None
        plans = [self._plan(db) for db in self._databases]
        result = {"firing": firing.isoformat(), "databases": [p.database for p in plans]}
        with self._incidents.atomic():
            claimed = self._runs.claim(
                REMINDER_JOB, firing, self._claimed_by, now, status="done", result=result
            )
            if claimed is None:
                return None
            self._incidents.record(
                at=now, actor="scheduler", action="drill.reminded", outcome="ok", details=result
            )
        return DrillReminder(firing, plans)

    def _plan(self, db: DatabaseSettings) -> DrillPlan:
        backup = self._drills.latest_verified(db.name)  # what the drill would restore
        passed = [
            d.total_seconds
            for d in self._drills.recent(db.name, 20)
            if d.passed and d.total_seconds is not None
        ][:EXPECTED_FROM]
        return DrillPlan(
            database=db.name,
            server=self._drills.server(db.name),
            backup_id=backup.id if backup else None,
            backup_taken=backup.started_at if backup else None,
            expected_seconds=statistics.median(passed) if passed else None,
            rto_minutes=self._drills.rto_minutes(db.name),
        )
