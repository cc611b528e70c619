"""`Services`: the container of every service one process uses, and the operations
that span several of them (queueing jobs, taking over what a dead process left, closing).
`bot/composition.py` builds it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from backupbot.bot.runtime.jobs import BackgroundJobs
from backupbot.clock import Clock
from backupbot.commands.backup import BackupService
from backupbot.commands.checklist import ChecklistService
from backupbot.commands.drill import DrillService
from backupbot.commands.drill_postpone import DrillPostponer
from backupbot.commands.escalation import AlertService
from backupbot.commands.escalation_review import BreakGlassReviews
from backupbot.commands.migrations import MigrationService
from backupbot.commands.operation_notes import NoteService
from backupbot.commands.provider_points import PointsService
from backupbot.commands.restore import RestoreService
from backupbot.commands.retention import RetentionService
from backupbot.commands.status import BotStatus, DatabaseStatus
from backupbot.commands.status_service import StatusService
from backupbot.errors import StateUnavailable
from backupbot.settings import (
    Settings,
    SlackCredentials,
)
from backupbot.storage.artifacts import ArtifactStore
from backupbot.storage.catalog import BackupCatalog, BackupRecord
from backupbot.storage.drills import DrillRecord
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.job_queue import Job, JobQueue, PostgresQueue
from backupbot.storage.liveness import (
    SHARED_QUEUE,
    owner_is_dead,
    process_identity,
)
from backupbot.storage.outbox import Outbox
from backupbot.storage.restores import RestoreRecord
from backupbot.storage.schedule_runs import ScheduledRuns

if TYPE_CHECKING:
    from slack_sdk import WebClient
    from sqlalchemy import Engine

    from backupbot.bot.slack.kit import Message


from backupbot.bot.infrastructure import STORE_SERVER, server_key, url_server_key
from backupbot.commands.access import Access


@dataclass
class Services:
    settings: Settings
    slack: SlackCredentials
    clock: Clock
    engine: Engine
    catalog: BackupCatalog
    incidents: IncidentLog
    scheduled_runs: ScheduledRuns
    store: ArtifactStore
    backups: BackupService
    restores: RestoreService
    checklists: ChecklistService
    drills: DrillService
    retention: RetentionService
    alerts: AlertService
    slack_client: WebClient | None
    jobs: BackgroundJobs
    queue: JobQueue
    status: StatusService
    access: Access
    reviews: BreakGlassReviews
    postponements: DrillPostponer
    outbox: Outbox
    notes: NoteService
    points: PointsService
    migrations: MigrationService

    def _server(self, database: str, target_name: str | None = None) -> str:
        """The server a job loads: the configured target's when it writes one (`--into
        staging`, a drill on `drill.target`), else the database's own."""
        target = self.settings.targets.get(target_name) if target_name else None
        if target is not None:
            return url_server_key(target.url.get_secret_value(), f"target:{target_name}")
        db = self.settings.database(database)
        return server_key(db) if db is not None else f"unconfigured:{database}"

    def _restore_server(self, record: RestoreRecord) -> str:
        """A provider restore into a new branch/instance loads the provider, not the
        database's server (no safety dump): it gets a slot of its own per database, so
        an hour-long provider operation does not hold up the server's backups."""
        if record.is_provider and record.provider_into == "new":
            return f"provider:{record.provider}:{record.database}"
        return self._server(record.database, record.target_name)

    def _holder(self) -> str:
        """Who holds a job's row while it waits: the shared queue, or this process."""
        return SHARED_QUEUE if isinstance(self.queue, PostgresQueue) else process_identity()

    def enqueue_backup(self, record: BackupRecord) -> None:
        """Hand a started (waiting) backup to the workers. If it cannot be queued, the
        backup is failed and recorded at once, and the error raised."""
        server = self._server(record.database)
        job = Job("backup", {"backup_id": record.id}, server, f"backup:{record.id}")
        try:
            self.queue.enqueue(job)
        except Exception as exc:
            self.backups.fail_unqueued(record, exc)
            raise StateUnavailable(
                f"The backup of {record.database} could not be queued ({type(exc).__name__});"
                " nothing was started. Try again once the state database is back."
            ) from exc

    def enqueue_restore(self, record: RestoreRecord) -> None:
        """Hand an approved (waiting) restore to the workers. If it cannot be queued, the
        restore is failed and recorded at once, and the error raised."""
        job = Job(
            "restore",
            {"restore_id": record.id},
            self._restore_server(record),
            f"restore:{record.id}",
        )
        try:
            if not self.restores.hold(record, self._holder()):
                return  # no longer waiting: claimed already, or taken over
            self.queue.enqueue(job)
        except Exception as exc:
            self.restores.fail_unqueued(record)
            raise StateUnavailable(
                f"The restore {record.id} could not be queued ({type(exc).__name__}); nothing "
                "was started. Request it again once the state database is back."
            ) from exc

    def enqueue_drill(self, record: DrillRecord) -> None:
        """Hand a started (waiting) drill to the workers. If it cannot be queued, the
        drill is failed and recorded at once, and the error raised."""
        job = Job(
            "drill",
            {"drill_id": record.id},
            self._server(record.database, self.settings.drill_target(record.database)),
            f"drill:{record.id}",
        )
        try:
            if not self.drills.hold(record, self._holder()):
                return
            self.queue.enqueue(job)
        except Exception as exc:
            self.drills.fail_unqueued(record)
            raise StateUnavailable(
                f"The restore drill of {record.database} could not be queued "
                f"({type(exc).__name__}); nothing was started."
            ) from exc

    def enqueue_retention(self, at: datetime, actor: str) -> None:
        """Queue a retention run as of `at` (the scheduled firing): a worker applies it.
        One job per `at`; the worker claims its run in the ledger before deleting."""
        job = Job(
            "retention",
            {"at": at.isoformat(), "actor": actor},
            STORE_SERVER,
            f"retention:{at.isoformat()}",
        )
        self.queue.enqueue(job)

    def start_worker(self, client: WebClient | None) -> None:
        """Run queued jobs in this process (serve's in-process worker, `backupbot worker`)."""
        from backupbot.bot.runtime.job_runner import job_handler

        self.queue.start_worker(job_handler(self, client))

    def wait_idle(self, timeout: float = 120.0) -> bool:
        """Wait until no job is queued or running, here or (shared queue) anywhere."""
        deadline = time.monotonic() + timeout
        tick = threading.Event()
        while not (
            self.jobs.wait_idle(max(0.0, deadline - time.monotonic())) and self.queue.idle()
        ):
            if time.monotonic() > deadline:
                return False
            tick.wait(0.05)
        return True

    def requeue_waiting(self) -> int:
        """In-process queue only: queue again the backups, approved restores and drills a
        stopped process left waiting (their owner is gone, or no queue ever took them)."""
        if isinstance(self.queue, PostgresQueue):
            return 0
        adopted = self.backups.adopt_queued()
        for record in adopted:
            self.enqueue_backup(record)
        count = len(adopted)
        for restore in self.restores.waiting():
            if restore.owner is None or owner_is_dead(restore.owner):
                self.enqueue_restore(restore)
                count += 1
        for drill in self.drills.waiting():
            if drill.owner is None or owner_is_dead(drill.owner):
                self.enqueue_drill(drill)
                count += 1
        return count

    def status_report(self, database: str | None = None) -> list[DatabaseStatus]:
        return self.status.report(database)

    def bot_status(self) -> BotStatus:
        return self.status.overall()

    def take_over_abandoned(self) -> None:
        """Close the backups, restores and drills whose process stopped, truthfully
        recorded (see `storage/liveness.py`); any process may do this at any time."""
        for record in self.backups.take_over_abandoned():
            self._correct_message(record)
        for restore in self.restores.fail_abandoned():
            self._correct_restore_message(restore)
        for drill in self.drills.fail_abandoned(self.clock.now()):
            self._correct_drill_message(drill)

    def _correct_restore_message(self, record: RestoreRecord) -> None:
        """A taken-over restore's request message still says running: show its end."""
        from backupbot.bot.slack.blocks import restore as restore_blocks

        message = restore_blocks.restore_message(record, self.clock.now())
        self._correct(f"restore:{record.id}", record.channel, record.message_ts, message)

    def _correct_drill_message(self, record: DrillRecord) -> None:
        """A taken-over drill's channel message still says running: show its end."""
        from backupbot.bot.slack.blocks import drill as drill_blocks

        message = drill_blocks.drill_message(record, self.clock.now())
        self._correct(f"drill:{record.id}", record.channel, record.message_ts, message)

    def _correct_message(self, record: BackupRecord) -> None:
        """A taken-over backup's channel message still says running: show its end."""
        from backupbot.bot.slack.blocks import backup as backup_blocks

        message = backup_blocks.backup_result(record)
        self._correct(f"backup:{record.id}", record.channel, record.message_ts, message)

    def _correct(self, key: str, channel: str | None, ts: str | None, message: Message) -> None:
        """Through the outbox, under the result's own key: sent now if Slack answers,
        else by the next housekeeping (and it supersedes an older version still waiting)."""
        if self.slack_client is None or not (channel and ts):
            return
        from backupbot.bot.slack.outbox_delivery import OutboxDelivery

        OutboxDelivery(self.outbox, self.slack_client, self.incidents, self.clock).send(
            key, channel, message, ts=ts
        )

    def close(self) -> None:
        self.queue.stop()
        self.jobs.shutdown()
