"""What a worker does with each job from the queue (`storage/job_queue.py`), by kind.

- `backup`: a backup `start` recorded; the worker claims it (`BackupService.run` does,
  with a guarded update, so a job delivered twice runs once) and keeps its channel
  message current.
- `restore`: an approved restore (with its safety backup); claimed the same way, then
  run with its progress in the request message and thread (`RestoreFlow.run`).
- `drill`: a started restore drill, claimed and run (`DrillFlow.execute`).
- `retention`: a scheduled retention run as of its firing; claimed by its row in the
  ledger of scheduled runs (job `retention.apply`, owner in `claimed_by`).

A scheduled backup or drill that failed runs the alert step at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from backupbot.bot.slack import delivery
from backupbot.bot.slack.blocks.retention import retention_summary
from backupbot.bot.slack.flows import Flows
from backupbot.commands import humanize
from backupbot.commands.schedule import SCHEDULER_ACTOR
from backupbot.errors import NotFound
from backupbot.storage.catalog import QUEUED, SUCCEEDED
from backupbot.storage.drills import PASSED
from backupbot.storage.liveness import process_identity
from backupbot.storage.restores import RUNNING
from backupbot.storage.schedule_runs import DONE, FAILED

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from backupbot.bot.services import Services

log = logging.getLogger(__name__)


def job_handler(
    services: Services, client: WebClient | None
) -> Callable[[str, dict[str, Any]], None]:
    def handle(kind: str, payload: dict[str, Any]) -> None:
        if kind == "backup":
            run_backup_job(services, client, str(payload["backup_id"]))
        elif kind == "restore":
            run_restore_job(services, client, str(payload["restore_id"]))
        elif kind == "drill":
            run_drill_job(services, client, str(payload["drill_id"]))
        elif kind == "retention":
            at = datetime.fromisoformat(str(payload["at"]))
            run_retention_job(services, client, at, str(payload["actor"]))
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
    final, result, shown = Flows(services, client).backup.run(record)
    if not shown and client is not None and humanize.is_slack_user(record.actor):
        # The channel is unreachable: tell the person who asked, in a direct message.
        delivery.post(client, record.actor, result)
    if final.status != SUCCEEDED and record.actor == SCHEDULER_ACTOR:
        from backupbot.bot.runtime.schedule_actions import alert_now

        alert_now(services, client)


def run_restore_job(services: Services, client: WebClient | None, restore_id: str) -> None:
    try:
        record = services.restores.get(restore_id)
    except NotFound:
        log.warning("restore job for %s, which is not recorded; dropped", restore_id)
        return
    if record.status != RUNNING or record.stage != QUEUED:
        log.info("restore %s is not waiting (%s); job dropped", restore_id, record.status)
        return
    if client is None or services.settings.slack is None:
        services.restores.execute(restore_id)
        return
    Flows(services, client).restore.run(record)


def run_drill_job(services: Services, client: WebClient | None, drill_id: str) -> None:
    try:
        record = services.drills.get(drill_id)
    except NotFound:
        log.warning("drill job for %s, which is not recorded; dropped", drill_id)
        return
    if not record.waiting:
        log.info("drill %s is not waiting (%s); job dropped", drill_id, record.status)
        return
    final = Flows(services, client).drill.execute(record)
    if final.finished and final.status != PASSED and final.actor == SCHEDULER_ACTOR:
        from backupbot.bot.runtime.schedule_actions import alert_now

        alert_now(services, client)


RETENTION_RUN = "retention.apply"  # the ledger job a retention job claims its run under


def run_retention_job(
    services: Services, client: WebClient | None, at: datetime, actor: str
) -> None:
    """Apply retention as of `at`, once: the ledger row (RETENTION_RUN, at) is the claim."""
    now = services.clock.now()
    run = services.scheduled_runs.claim(RETENTION_RUN, at, process_identity(), now)
    if run is None:
        log.info("the retention run of %s is another worker's; job dropped", at.isoformat())
        return
    status, result = FAILED, {"ok": False, "error": "internal error; see the bot's log"}
    try:
        report = services.retention.apply(at, actor=actor)
        result = {
            "ok": report.ok,
            "deleted": [d.backup.id for d in report.deleted],
            "failed": [f.decision.backup.id for f in report.failed],
        }
        status = DONE if report.ok else FAILED
        note = retention_summary(report)
        channel = services.settings.slack.channel if services.settings.slack else None
        if note is not None and client is not None and channel:
            delivery.post(client, channel, note)
    finally:
        services.scheduled_runs.finish(run.id, status, services.clock.now(), result)
