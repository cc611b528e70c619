"""Scheduled jobs as data, and the single step that runs whatever is due.

`ScheduleRunner.run_due(now)` looks at each job's cron, finds the newest firing in the
grace window `(now - grace, now]` that the ledger has not seen, claims it (the unique
(job, scheduled time) row: exactly one process wins), runs it and records the result.
Firings older than the grace window (the bot was down too long) are recorded once as
missed, with an incident; several firings inside the window run once (coalesced). The
first time a job is seen, the ledger notes it (`registered`) and nothing before that
moment is owed: a new bot does not start with a backlog. The
step takes `now` and returns what it did, so tests drive it with a controlled clock, and
APScheduler (`bot/scheduler.py`) only decides *when* to call it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from backupbot.cron import cron_trigger
from backupbot.errors import BackupbotError
from backupbot.settings import Settings
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.schedule_runs import DONE, FAILED, MISSED, REGISTERED, ScheduledRuns

log = logging.getLogger(__name__)

SCHEDULER_ACTOR = "scheduler"
LATE_AFTER = timedelta(minutes=2)  # a run starting later than this is logged as late
_MAX_FIRES = 10_000  # enough for a once-a-minute cron over a week's grace window


@dataclass(frozen=True)
class ScheduledJob:
    """One recurring job: `name` is its ledger key ("backup:app", "retention", …)."""

    name: str
    kind: str  # backup | retention | drill | checklist
    cron: str
    timezone: str = "UTC"
    database: str | None = None

    def trigger(self) -> CronTrigger:
        """The cron: 5 fields, or 6 with seconds first; day-of-week 0 and 7 are Sunday."""
        return cron_trigger(self.cron, ZoneInfo(self.timezone))

    def fires_between(self, after: datetime, until: datetime) -> list[datetime]:
        """Firing times in `(after, until]`, oldest first."""
        trigger, fires = self.trigger(), []
        previous: datetime | None = None
        current = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
        while current is not None and current <= until and len(fires) < _MAX_FIRES:
            fires.append(current)
            previous = current
            current = trigger.get_next_fire_time(previous, current + timedelta(microseconds=1))
        return fires

    def next_fire(self, now: datetime) -> datetime | None:
        """The first firing after `now`."""
        return self.trigger().get_next_fire_time(None, now + timedelta(microseconds=1))


def stale_after(job: ScheduledJob, grace: timedelta, now: datetime) -> timedelta:
    """How old a database's newest verified backup may get: the interval between its
    scheduled backups plus `grace` (a daily schedule with 2 h grace: 26 h)."""
    first = job.next_fire(now)
    second = job.next_fire(first) if first is not None else None
    period = second - first if first is not None and second is not None else timedelta(days=1)
    return period + grace


def stale_limits(settings: Settings, now: datetime) -> dict[str, timedelta]:
    """Per database, the age beyond which its newest verified backup is stale."""
    backup = settings.backup
    if backup.stale_after_hours is not None:
        return {name: timedelta(hours=backup.stale_after_hours) for name in settings.database_names}
    grace = timedelta(hours=backup.stale_grace_hours)
    return {
        job.database: stale_after(job, grace, now)
        for job in jobs_from_settings(settings)
        if job.database is not None
    }


def jobs_from_settings(settings: Settings) -> list[ScheduledJob]:
    """Per-database backups (each database's `schedule` and `timezone`), then the bot's
    own monthly and daily jobs (`schedules:`), in the order a tick runs them."""
    own = settings.schedules
    jobs = [
        ScheduledJob(f"backup:{db.name}", "backup", db.schedule, db.timezone, db.name)
        for db in settings.databases
    ]
    jobs += [
        ScheduledJob("retention", "retention", own.retention, own.timezone),
        ScheduledJob("drill", "drill", own.drill, own.timezone),
        ScheduledJob("checklist", "checklist", own.checklist, own.timezone),
    ]
    return jobs


Action = Callable[[ScheduledJob, datetime], Mapping[str, Any]]
"""Runs one job at `now` and returns a JSON-safe summary; `{"ok": False, …}` or an
exception marks the run failed."""


@dataclass(frozen=True)
class RunOutcome:
    job: str
    scheduled_for: datetime
    status: str  # done | failed | missed | taken (another process claimed it)
    late_seconds: int = 0
    result: dict[str, Any] = field(default_factory=dict)


class ScheduleRunner:
    def __init__(
        self,
        *,
        jobs: Sequence[ScheduledJob],
        runs: ScheduledRuns,
        actions: Mapping[str, Action],
        incidents: IncidentLog,
        grace: timedelta,
        claimed_by: str,
    ) -> None:
        missing = {j.kind for j in jobs} - set(actions)
        if missing:
            raise ValueError(f"no action for scheduled job kinds {sorted(missing)}")
        self.jobs = list(jobs)
        self._runs = runs
        self._actions = actions
        self._incidents = incidents
        self._grace = grace
        self._claimed_by = claimed_by

    def run_due(self, now: datetime, only: str | None = None) -> list[RunOutcome]:
        """Run every job (or just `only`) whose newest firing is due and unclaimed."""
        outcomes: list[RunOutcome] = []
        for job in self.jobs:
            if only is None or job.name == only:
                outcomes.extend(self._run_job(job, now))
        return outcomes

    def _run_job(self, job: ScheduledJob, now: datetime) -> list[RunOutcome]:
        outcomes: list[RunOutcome] = []
        window_start = now - self._grace
        last = self._runs.last_scheduled_for(job.name)
        if last is None:
            self._runs.claim(job.name, now, self._claimed_by, now, status=REGISTERED)
            last = self._runs.last_scheduled_for(job.name)  # ours, or a racing process's
        if last is not None and last < window_start:
            missed = job.fires_between(last, window_start - timedelta(microseconds=1))
            if missed:
                outcomes.extend(self._record_missed(job, missed, now))
        after = last if last is not None and last >= window_start else window_start
        fires = job.fires_between(after, now)
        if not fires:
            return outcomes
        fire = fires[-1]
        run = self._runs.claim(job.name, fire, self._claimed_by, now)
        if run is None:
            return [*outcomes, RunOutcome(job.name, fire, "taken")]
        late = now - fire
        if late > LATE_AFTER:
            log.warning(
                "scheduled job %s was due at %s and starts %s late (the bot was not running)",
                job.name,
                fire.isoformat(),
                _span(late),
            )
        else:
            log.info("scheduled job %s starts (due %s)", job.name, fire.isoformat())
        status, result = self._execute(job, now)
        if len(fires) > 1:
            result["coalesced"] = len(fires) - 1
        self._runs.finish(run.id, status, now, result)
        return [*outcomes, RunOutcome(job.name, fire, status, run.late_seconds, result)]

    def _execute(self, job: ScheduledJob, now: datetime) -> tuple[str, dict[str, Any]]:
        try:
            result = dict(self._actions[job.kind](job, now))
        except BackupbotError as exc:
            log.warning("scheduled job %s failed: %s", job.name, exc)
            return FAILED, {"ok": False, "error": str(exc)}
        except Exception:
            log.exception("scheduled job %s crashed", job.name)
            return FAILED, {"ok": False, "error": "internal error; see the bot's log"}
        return (FAILED if result.get("ok") is False else DONE), result

    def _record_missed(
        self, job: ScheduledJob, missed: list[datetime], now: datetime
    ) -> list[RunOutcome]:
        """Firings beyond the grace window: one ledger row (the newest) and one incident."""
        details = {
            "job": job.name,
            "count": len(missed),
            "first": missed[0].isoformat(),
            "last": missed[-1].isoformat(),
            "grace_hours": self._grace.total_seconds() / 3600,
        }
        run = self._runs.claim(
            job.name, missed[-1], self._claimed_by, now, status=MISSED, result=details
        )
        if run is None:
            return []
        log.warning(
            "scheduled job %s missed %d run(s) from %s to %s: the bot was down longer than "
            "the %s grace window",
            job.name,
            len(missed),
            details["first"],
            details["last"],
            _span(self._grace),
        )
        self._incidents.record(
            at=now,
            actor=SCHEDULER_ACTOR,
            action="schedule.missed",
            outcome="failed",
            database=job.database,
            details=details,
        )
        return [RunOutcome(job.name, missed[-1], MISSED, run.late_seconds, details)]


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
