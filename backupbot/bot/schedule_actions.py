"""What each scheduled job does, with its evidence posted to the channel.

`schedule_actions(services, client)` maps a job kind to a callable the `ScheduleRunner`
runs; `build_scheduler` assembles APScheduler, the runner and the housekeeping steps for
`backupbot serve`. Everything here is Slack I/O around one command call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from backupbot.bot.backup_flow import run_and_post
from backupbot.commands.schedule import (
    SCHEDULER_ACTOR,
    Action,
    ScheduledJob,
    ScheduleRunner,
    jobs_from_settings,
)
from backupbot.errors import BackupAlreadyRunning
from backupbot.storage.catalog import SUCCEEDED

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from backupbot.bot.composition import Services

log = logging.getLogger(__name__)


def _channel(services: Services) -> str | None:
    return services.settings.slack.channel if services.settings.slack else None


def scheduled_backup(services: Services, client: WebClient | None) -> Action:
    def action(job: ScheduledJob, now: datetime) -> Mapping[str, Any]:
        assert job.database is not None
        try:
            record = services.backups.start(job.database, SCHEDULER_ACTOR, None)
        except BackupAlreadyRunning as exc:
            # Someone's backup of this database is running right now: that is the backup.
            return {"ok": True, "skipped": str(exc)}
        final, _message, _shown = run_and_post(services, client, _channel(services), record)
        return {"ok": final.status == SUCCEEDED, "backup_id": final.id, "error": final.error}

    return action


def schedule_actions(services: Services, client: WebClient | None) -> dict[str, Action]:
    return {"backup": scheduled_backup(services, client)}


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
