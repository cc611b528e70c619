"""What a worker does with each job from the queue (`storage/job_queue.py`).

A backup job names a backup `start` recorded; the worker claims it (`BackupService.run`
does, with a guarded update, so a job delivered twice runs once), keeps its channel
message current, and, for a scheduled backup that failed, runs the alert step at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from backupbot.bot.slack import delivery
from backupbot.bot.slack.flows.backup import run_and_post
from backupbot.commands import humanize
from backupbot.commands.schedule import SCHEDULER_ACTOR
from backupbot.errors import NotFound
from backupbot.storage.catalog import QUEUED, SUCCEEDED

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from backupbot.bot.composition import Services

log = logging.getLogger(__name__)


def job_handler(
    services: Services, client: WebClient | None
) -> Callable[[str, dict[str, Any]], None]:
    def handle(kind: str, payload: dict[str, Any]) -> None:
        if kind == "backup":
            run_backup_job(services, client, str(payload["backup_id"]))
        else:
            log.error("unknown job kind %r; dropped", kind)

    return handle


def run_backup_job(services: Services, client: WebClient | None, backup_id: str) -> None:
    try:
        record = services.catalog.get(backup_id)
    except NotFound:
        log.warning("backup job for %s, which is not in the catalog; dropped", backup_id)
        return
    if record.stage != QUEUED:
        log.info("backup %s is not waiting (%s); job dropped", backup_id, record.status)
        return  # delivered twice, or taken over while it waited
    channel = services.settings.slack.channel if services.settings.slack else None
    final, result, shown = run_and_post(services, client, channel, record)
    if not shown and client is not None and humanize.is_slack_user(record.actor):
        # The channel is unreachable: tell the person who asked, in a direct message.
        delivery.post(client, record.actor, result)
    if final.status != SUCCEEDED and record.actor == SCHEDULER_ACTOR:
        from backupbot.bot.runtime.schedule_actions import alert_now

        alert_now(services, client)
