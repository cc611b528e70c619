"""What each scheduled job does, with its evidence posted to the channel.

`schedule_actions(services, client)` maps a job kind to a callable the `ScheduleRunner`
runs; `build_scheduler` assembles APScheduler, the runner and the housekeeping steps for
`backupbot serve`. Everything here is Slack I/O around one command call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from backupbot.bot.runtime.scheduler import BotScheduler, Interval, process_name
from backupbot.bot.slack.flows import Flows
from backupbot.commands.drill_reminder import DrillReminders
from backupbot.commands.schedule import (
    SCHEDULER_ACTOR,
    Action,
    ScheduledJob,
    ScheduleRunner,
    jobs_from_settings,
)
from backupbot.errors import BackupAlreadyRunning, BackupbotError

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from backupbot.bot.services import Services
    from backupbot.bot.slack.flows.drill import DrillFlow

log = logging.getLogger(__name__)


def _channel(services: Services) -> str | None:
    return services.settings.slack.channel if services.settings.slack else None


def alert_now(services: Services, client: WebClient | None) -> None:
    """Run the alert step at once (a scheduled run just failed), instead of within the
    minute: the failure's alert and its first escalation level go out right away."""
    if client is None:
        return
    try:
        Flows(services, client).alert.step(services.clock.now())
    except Exception:
        log.exception("the alert step after a failed scheduled run failed; housekeeping retries")


def scheduled_backup(services: Services, client: WebClient | None) -> Action:
    def action(job: ScheduledJob, now: datetime) -> Mapping[str, Any]:
        assert job.database is not None
        try:
            record = services.backups.start(job.database, SCHEDULER_ACTOR, None)
        except BackupAlreadyRunning as exc:
            # Someone's backup of this database is running right now: that is the backup.
            return {"ok": True, "skipped": str(exc)}
        # The leader only queues: workers (this process's, and `backupbot worker`s) run
        # it, each database server's backups within its limit. A failure alerts from
        # the worker (`bot/job_runner.py`).
        services.enqueue_backup(record)
        return {"ok": True, "backup_id": record.id, "queued": True}

    return action


def scheduled_retention(services: Services, client: WebClient | None) -> Action:
    def action(job: ScheduledJob, now: datetime) -> Mapping[str, Any]:
        # The leader only queues; a worker applies it as of this firing and posts the
        # summary (`bot/runtime/job_runner.py`, its own ledger row `retention.apply`).
        services.enqueue_retention(now, SCHEDULER_ACTOR)
        return {"ok": True, "queued": True}

    return action


def scheduled_drill(services: Services, client: WebClient | None) -> Action:
    def action(job: ScheduledJob, now: datetime) -> Mapping[str, Any]:
        # Each drill is started (its message posted) and queued; workers run them, each
        # database server's within its limit, and a failure alerts from the worker.
        postponed = frozenset(services.postponements.skipped_now(now))
        drills = Flows(services, client).drill.queue(None, SCHEDULER_ACTOR, skip=postponed)
        failed = [d for d in drills if d.finished and d.status != "passed"]
        if failed:  # could not even start (no verified backup, server unreachable)
            alert_now(services, client)
        return {
            "ok": not failed,
            "queued": True,
            "drills": {d.database: {"id": d.id, "status": d.status} for d in drills},
            "postponed": sorted(postponed),
        }

    return action


def scheduled_checklist(services: Services, client: WebClient | None) -> Action:
    def action(job: ScheduledJob, now: datetime) -> Mapping[str, Any]:
        record = Flows(services, client).checklist.post_monthly(now)
        return {"ok": True, "checklist": record.id if record else None}

    return action


def schedule_actions(services: Services, client: WebClient | None) -> dict[str, Action]:
    return {
        "backup": scheduled_backup(services, client),
        "retention": scheduled_retention(services, client),
        "drill": scheduled_drill(services, client),
        "checklist": scheduled_checklist(services, client),
    }


def schedule_runner(
    services: Services, client: WebClient | None, claimed_by: str
) -> ScheduleRunner:
    return ScheduleRunner(
        jobs=jobs_from_settings(services.settings),
        runs=services.scheduled_runs,
        actions=schedule_actions(services, client),
        incidents=services.incidents,
        grace=timedelta(hours=services.settings.schedules.grace_hours),
        claimed_by=claimed_by,
    )


def drill_reminders(services: Services) -> DrillReminders:
    """The reminders before the scheduled drill (`schedules.drill`)."""
    settings = services.settings
    [job] = [j for j in jobs_from_settings(settings) if j.name == "drill"]
    return DrillReminders(
        drills=services.drills,
        databases=list(settings.databases),
        runs=services.scheduled_runs,
        incidents=services.incidents,
        clock=services.clock,
        job=job,
        ahead=timedelta(days=settings.drill.remind_days_before),
        claimed_by=process_name(),
    )


def postponed_drills(services: Services, flow: DrillFlow, now: datetime) -> list[str]:
    """Start the postponed drills whose new time has come (each claimed once)."""
    started = []
    for p in services.postponements.claim_due(now):
        try:
            flow.queue(p.database, SCHEDULER_ACTOR)
            started.append(p.database)
        except BackupbotError:
            log.exception("the postponed drill of %s did not start", p.database)
    return started


def housekeeping(services: Services, client: WebClient | None) -> Callable[[datetime], Any]:
    """The leader's once-a-minute step: alerts (open, escalate, resolve) and the
    checklist reminder. Each part is guarded on its own, so one failing does not stop
    the others."""
    steps: list[Callable[[datetime], Any]] = [Flows(services, client).checklist.remind_step]
    if client is not None:
        steps.append(Flows(services, client).alert.step)
        reminders = drill_reminders(services)
        drill_flow = Flows(services, client).drill
        steps.append(lambda _now: drill_flow.remind_step(reminders))
        steps.append(lambda now: postponed_drills(services, drill_flow, now))

    def step(now: datetime) -> None:
        for part in steps:
            try:
                part(now)
            except Exception:
                log.exception("housekeeping step %s failed", getattr(part, "__qualname__", part))

    return step


def build_scheduler(services: Services, client: WebClient | None) -> BotScheduler:
    """The scheduler `backupbot serve` runs (leader election, APScheduler, the jobs)."""
    return BotScheduler(
        engine=services.engine,
        runner=schedule_runner(services, client, process_name()),
        intervals={"housekeeping": Interval(60, housekeeping(services, client))},
        clock=services.clock,
        grace=timedelta(hours=services.settings.schedules.grace_hours),
        on_leader=services.drills.cleanup_leftovers,
    )
