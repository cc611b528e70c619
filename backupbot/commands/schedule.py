"""Scheduled jobs as data, and the single step that runs whatever is due.

`ScheduleRunner.run_due(now)` looks at each job's cron, finds the newest firing in the
grace window `(now - grace, now]` that the ledger has not seen, claims it (the unique
(job, scheduled time) row: exactly one process wins), runs it and records the result.
Firings older than the grace window (the bot was down too long) are recorded once as
missed, with an incident; several firings inside the window run once (coalesced). The
first time a job is seen, the ledger notes it (`registered`) and nothing before that
moment is owed: a new bot does not start with a backlog. The
step takes `now` and returns what it did, so tests drive it with a controlled clock, and
APScheduler (`bot/runtime/scheduler.py`) only decides *when* to call it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from backupbot.commands import humanize
from backupbot.cron import Window, cron_trigger, fire_after, fire_at_or_before, iter_fires, window
from backupbot.errors import BackupbotError
from backupbot.settings import Settings
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.schedule_runs import DONE, FAILED, MISSED, REGISTERED, ScheduledRuns

log = logging.getLogger(__name__)

SCHEDULER_ACTOR = "scheduler"
LATE_AFTER = timedelta(minutes=2)  # a run starting later than this is logged as late


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
        """Every firing time in `(after, until]`, oldest first, in UTC. It lists them all:
        for the ends and the number of a window that may be long, use `window`."""
        return list(iter_fires(self.trigger(), after, until))

    def window(self, after: datetime, until: datetime) -> Window:
        """The oldest and newest firing in `(after, until]` and how many there are."""
        return window(self.trigger(), after, until)

    def next_fire(self, now: datetime) -> datetime | None:
        """The first firing after `now`, in UTC."""
        return fire_after(self.trigger(), now)

    def previous_fire(self, at: datetime) -> datetime | None:
        """The newest firing at or before `at`, in UTC."""
        return fire_at_or_before(self.trigger(), at)


@dataclass(frozen=True)
class StaleRule:
    """When a database's newest verified backup is stale, judged afresh at each `now`.

    By its schedule (the default): a verified backup must have started at or after the
    newest scheduled firing whose `grace` has run out, i.e. the newest firing at or before
    `now - grace`. A weekday schedule owes nothing at the weekend (Friday's firing stays
    the one owed until Monday's firing plus the grace), and a backup that is late but within
    the grace is not yet stale. With `max_age` (`backup.stale_after_hours`): the newest
    verified backup must be younger than that.
    """

    job: ScheduledJob | None = None
    grace: timedelta = timedelta(0)
    max_age: timedelta | None = None

    def __post_init__(self) -> None:
        if (self.job is None) == (self.max_age is None):
            raise ValueError("a stale rule has either a schedule or a maximum age")

    def owed_since(self, now: datetime) -> datetime | None:
        """The time since which a verified backup must exist at `now`; None while no
        scheduled firing's grace has run out."""
        now = now.astimezone(UTC)  # arithmetic on instants, not on a zone's wall clock
        if self.max_age is not None:
            return now - self.max_age
        assert self.job is not None
        return self.job.previous_fire(now - self.grace)

    def is_stale(self, newest: datetime, now: datetime) -> bool:
        """Whether a newest verified backup started at `newest` is stale at `now`."""
        owed = self.owed_since(now)
        return owed is not None and newest < owed

    def describe(self, now: datetime) -> str:
        """What is missing, as the end of "No verified backup …": "in the last 30 h", or
        "since the scheduled run of 2026-12-07 02:00 Europe/Berlin (01:00 UTC) and its
        2 h grace"."""
        if self.max_age is not None:
            return f"in the last {_hours(self.max_age)}"
        assert self.job is not None
        owed = self.owed_since(now)
        when = humanize.zoned(owed, self.job.timezone) if owed else "?"
        grace = f" and its {_hours(self.grace)} grace" if self.grace else ""
        return f"since the scheduled run of {when}{grace}"


def as_stale_rule(rule: StaleRule | timedelta) -> StaleRule:
    """A rule as given, or a plain age limit as the rule of that maximum age."""
    return rule if isinstance(rule, StaleRule) else StaleRule(max_age=rule)


def stale_rules(settings: Settings) -> dict[str, StaleRule]:
    """Per configured database, when its newest verified backup is stale: since its
    backup schedule's previous firing plus `backup.stale_grace_hours`, or older than
    `backup.stale_after_hours` where that is set."""
    backup = settings.backup
    if backup.stale_after_hours is not None:
        limit = timedelta(hours=backup.stale_after_hours)
        return {name: StaleRule(max_age=limit) for name in settings.database_names}
    grace = timedelta(hours=backup.stale_grace_hours)
    return {
        job.database: StaleRule(job=job, grace=grace)
        for job in jobs_from_settings(settings)
        if job.database is not None
    }


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    if hours >= 1 and hours == int(hours):
        return f"{int(hours)} h"
    return humanize.duration(span)


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
            missed = job.window(last, window_start - timedelta(microseconds=1))
            if missed.count:
                outcomes.extend(self._record_missed(job, missed, now))
        after = last if last is not None and last >= window_start else window_start
        due = job.window(after, now)
        if due.last is None:
            return outcomes
        fire = due.last
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
        if due.count > 1:
            result["coalesced"] = due.count - 1
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

    def _record_missed(self, job: ScheduledJob, missed: Window, now: datetime) -> list[RunOutcome]:
        """Firings beyond the grace window: one ledger row (the newest) and one incident."""
        assert missed.first is not None and missed.last is not None
        details: dict[str, Any] = {
            "job": job.name,
            "count": missed.count,
            "first": missed.first.isoformat(),
            "last": missed.last.isoformat(),
            "grace_hours": self._grace.total_seconds() / 3600,
        }
        if not missed.count_exact:
            details["count_at_least"] = True  # a per-second cron down for days: not all counted
        run = self._runs.claim(
            job.name, missed.last, self._claimed_by, now, status=MISSED, result=details
        )
        if run is None:
            return []
        log.warning(
            "scheduled job %s missed %s%d run(s) from %s to %s: the bot was down longer "
            "than the %s grace window",
            job.name,
            "" if missed.count_exact else "at least ",
            missed.count,
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
        return [RunOutcome(job.name, missed.last, MISSED, run.late_seconds, details)]


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
