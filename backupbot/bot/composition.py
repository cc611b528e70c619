"""The composition root: the one place that reads configuration and builds clients."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backupbot.bot.runtime.jobs import BackgroundJobs
from backupbot.clock import Clock, SystemClock
from backupbot.commands.approvals import ApprovalPolicy, CachedApprovers
from backupbot.commands.backup import BackupService
from backupbot.commands.checklist import ChecklistConditions, ChecklistService
from backupbot.commands.drill import DrillConditions, DrillService
from backupbot.commands.escalation import AlertService, BackupConditions
from backupbot.commands.restore import RestoreService
from backupbot.commands.restore_run import RestoreRunner
from backupbot.commands.retention import RetentionService
from backupbot.commands.schedule import stale_rules
from backupbot.commands.status import BotStatus, DatabaseStatus
from backupbot.commands.status_service import StatusService
from backupbot.errors import BackupbotError, StateUnavailable
from backupbot.settings import (
    DatabaseSettings,
    Settings,
    SlackCredentials,
    SlackSettings,
    StorageSettings,
    config_path,
    load_settings,
)
from backupbot.storage.alerts import AlertStore, BackupFacts
from backupbot.storage.artifacts import ArtifactStore
from backupbot.storage.catalog import BackupCatalog, BackupRecord
from backupbot.storage.checklists import ChecklistEvidenceQueries, Checklists
from backupbot.storage.drills import DrillLog, DrillRecord
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.job_queue import Job, JobQueue, LocalQueue, PostgresQueue
from backupbot.storage.liveness import (
    HEARTBEAT_SECONDS,
    SHARED_QUEUE,
    STALE_AFTER,
    owner_is_dead,
    process_identity,
)
from backupbot.storage.local_store import LocalStore
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.restores import RestoreRecord, RestoreRequests
from backupbot.storage.schedule_runs import ScheduledRuns
from backupbot.storage.state import create_state_engine, migrate

if TYPE_CHECKING:
    from slack_sdk import WebClient
    from sqlalchemy import Engine


def build_store(storage: StorageSettings) -> ArtifactStore:
    if storage.local is not None:
        return LocalStore(Path(storage.local.path))
    import boto3  # imported here: only S3 users pay for it (time and memory)
    from botocore.config import Config as BotoConfig

    from backupbot.storage.s3_store import S3Store

    s3 = storage.s3
    assert s3 is not None
    client = boto3.client(
        "s3",
        region_name=s3.region,
        endpoint_url=s3.endpoint_url,
        aws_access_key_id=s3.access_key_id.get_secret_value() if s3.access_key_id else None,
        aws_secret_access_key=(
            s3.secret_access_key.get_secret_value() if s3.secret_access_key else None
        ),
        config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}),
    )
    return S3Store(
        client,
        s3.bucket,
        s3.prefix,
        part_size=s3.part_size_mb << 20,
        max_concurrency=s3.max_concurrency,
    )


def _durable(settings: Settings) -> bool:
    return not settings.state_url.startswith("sqlite")


def build_queue(settings: Settings, jobs: BackgroundJobs) -> JobQueue:
    """procrastinate on PostgreSQL state; threads in this process on SQLite."""
    limits = settings.jobs
    if _durable(settings):
        conninfo = "postgresql://" + settings.state_url.split("://", 1)[1]
        return PostgresQueue(
            conninfo,
            max_parallel=limits.max_parallel_jobs,
            per_server=limits.max_parallel_per_server,
        )
    return LocalQueue(
        jobs.submit_long,
        max_parallel=limits.max_parallel_jobs,
        per_server=limits.max_parallel_per_server,
    )


STORE_SERVER = "store"  # retention's "server" in the job limits: one run at a time


def server_key(db: DatabaseSettings) -> str:
    """The `host:port` a database lives on, for the per-server job limit."""
    try:
        conn = ConnInfo.from_url(db.url.get_secret_value())
    except BackupbotError:
        return f"unparsed:{db.name}"
    return f"{conn.host}:{conn.port}"


def build_slack_client(creds: SlackCredentials) -> WebClient | None:
    """A Web API client with retries on rate limits and dropped connections, or None
    without a bot token (CLI use with Slack not set up)."""
    if creds.bot_token is None:
        return None
    from slack_sdk import WebClient
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
    )

    kwargs: dict[str, Any] = {}
    if creds.api_url:
        kwargs["base_url"] = creds.api_url.rstrip("/") + "/"
    client = WebClient(token=creds.bot_token.get_secret_value(), timeout=30, **kwargs)
    client.retry_handlers = [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=5),
    ]
    return client


class SlackApproverDirectory:
    """Members of a Slack user group, from `usergroups.users.list`."""

    def __init__(self, client: WebClient) -> None:
        self._client = client

    def members(self, group: str) -> frozenset[str]:
        from slack_sdk.errors import SlackApiError

        from backupbot.errors import BackupbotError

        try:
            users = self._client.usergroups_users_list(usergroup=group)["users"]
        except SlackApiError as exc:
            raise BackupbotError(
                f"Could not read the approver group {group} from Slack "
                f"({exc.response.get('error')}); try again, or list approvers by user id."
            ) from None
        return frozenset(str(u) for u in users or [])


def approval_policy(settings: Settings) -> ApprovalPolicy:
    slack = settings.slack or SlackSettings(channel="-")
    return ApprovalPolicy(
        approvers=frozenset(slack.approvers),
        approver_group=slack.approver_group,
        required_approvals=slack.required_approvals,
        timeout=timedelta(minutes=slack.approval_timeout_minutes),
    )


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

    def _server(self, database: str) -> str:
        db = self.settings.database(database)
        return server_key(db) if db is not None else f"unconfigured:{database}"

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
            self._server(record.database),
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
            "drill", {"drill_id": record.id}, self._server(record.database), f"drill:{record.id}"
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
        if self.slack_client is None or not (record.channel and record.message_ts):
            return
        from backupbot.bot.slack import delivery
        from backupbot.bot.slack.blocks import restore as restore_blocks

        message = restore_blocks.restore_message(record, self.clock.now())
        delivery.update(self.slack_client, record.channel, record.message_ts, message)

    def _correct_drill_message(self, record: DrillRecord) -> None:
        """A taken-over drill's channel message still says running: show its end."""
        if self.slack_client is None or not (record.channel and record.message_ts):
            return
        from backupbot.bot.slack import delivery
        from backupbot.bot.slack.blocks import drill as drill_blocks

        message = drill_blocks.drill_message(record, self.clock.now())
        delivery.update(self.slack_client, record.channel, record.message_ts, message)

    def _correct_message(self, record: BackupRecord) -> None:
        """A taken-over backup's channel message still says running: show its end."""
        if self.slack_client is None or not (record.channel and record.message_ts):
            return
        from backupbot.bot.slack import delivery
        from backupbot.bot.slack.blocks import backup as backup_blocks

        delivery.update(
            self.slack_client,
            record.channel,
            record.message_ts,
            backup_blocks.backup_result(record),
        )

    def close(self) -> None:
        self.queue.stop()
        self.jobs.shutdown()


def _backup_service(
    settings: Settings,
    catalog: BackupCatalog,
    incidents: IncidentLog,
    store: ArtifactStore,
    clock: Clock,
) -> BackupService:
    return BackupService(
        databases=settings.databases,
        catalog=catalog,
        incidents=incidents,
        store=store,
        clock=clock,
        compression_level=settings.backup.compression_level,
        compression_threads=settings.backup.compression_threads,
        pg_bin_dirs=settings.backup.pg_bin_dirs,
        lock_wait_seconds=settings.backup.lock_wait_seconds,
        durable_queue=_durable(settings),
    )


def _restore_services(
    settings: Settings,
    engine: Engine,
    catalog: BackupCatalog,
    incidents: IncidentLog,
    store: ArtifactStore,
    backups: BackupService,
    clock: Clock,
    slack_client: WebClient | None,
) -> tuple[RestoreRequests, RestoreRunner, RestoreService]:
    """The restore engine and the requests and approvals in front of it."""
    policy = approval_policy(settings)
    directory = SlackApproverDirectory(slack_client) if slack_client else None
    restore_requests = RestoreRequests(engine, stale_after=STALE_AFTER)
    runner = RestoreRunner(
        databases=settings.databases,
        catalog=catalog,
        restores=restore_requests,
        incidents=incidents,
        store=store,
        backups=backups,
        clock=clock,
        settings=settings.restore,
        pg_bin_dirs=settings.backup.pg_bin_dirs,
        heartbeat_seconds=HEARTBEAT_SECONDS,
    )
    restores = RestoreService(
        databases=settings.databases,
        catalog=catalog,
        restores=restore_requests,
        incidents=incidents,
        clock=clock,
        policy=policy,
        approvers=CachedApprovers(policy, directory, ttl=300.0),
        settings=settings.restore,
        runner=runner,
    )
    return restore_requests, runner, restores


def _drill_service(
    settings: Settings,
    engine: Engine,
    catalog: BackupCatalog,
    restore_requests: RestoreRequests,
    runner: RestoreRunner,
    incidents: IncidentLog,
    clock: Clock,
) -> DrillService:
    return DrillService(
        databases=settings.databases,
        drills=DrillLog(engine, stale_after=STALE_AFTER),
        heartbeat_seconds=HEARTBEAT_SECONDS,
        catalog=catalog,
        restores=restore_requests,
        runner=runner,
        incidents=incidents,
        clock=clock,
        settings=settings.restore,
    )


def _alert_service(
    settings: Settings,
    engine: Engine,
    incidents: IncidentLog,
    drills: DrillService,
    checklists: ChecklistService,
    clock: Clock,
) -> AlertService:
    """Escalation over every condition the bot watches."""
    return AlertService(
        store=AlertStore(engine),
        incidents=incidents,
        checks=[
            BackupConditions(BackupFacts(engine), stale_rules(settings)),
            DrillConditions(drills),
            ChecklistConditions(checklists),
        ],
        levels=settings.escalation.levels,
        providers={d.name: d.provider for d in settings.databases},
        clock=clock,
    )


def build_services(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    clock: Clock | None = None,
    store: ArtifactStore | None = None,
) -> Services:
    """Open the state database (migrating it), the artifact store and the services."""
    environ = os.environ if environ is None else environ
    clock = clock or SystemClock()
    engine = create_state_engine(settings.state_url)
    migrate(engine)
    catalog = BackupCatalog(engine)
    incidents = IncidentLog(engine)
    store = store or build_store(settings.storage)
    slack = SlackCredentials.from_env(environ)
    slack_client = build_slack_client(slack)
    backups = _backup_service(settings, catalog, incidents, store, clock)
    restore_requests, runner, restores = _restore_services(
        settings, engine, catalog, incidents, store, backups, clock, slack_client
    )
    checklists = ChecklistService(
        settings=settings,
        checklists=Checklists(engine),
        evidence=ChecklistEvidenceQueries(engine),
        incidents=incidents,
        clock=clock,
    )
    drills = _drill_service(settings, engine, catalog, restore_requests, runner, incidents, clock)
    alerts = _alert_service(settings, engine, incidents, drills, checklists, clock)
    jobs = BackgroundJobs(long_workers=max(4, settings.jobs.max_parallel_jobs))
    return Services(
        jobs=jobs,
        queue=build_queue(settings, jobs),
        settings=settings,
        slack=slack,
        clock=clock,
        engine=engine,
        catalog=catalog,
        incidents=incidents,
        scheduled_runs=ScheduledRuns(engine),
        store=store,
        backups=backups,
        restores=restores,
        checklists=checklists,
        drills=drills,
        retention=RetentionService(
            settings=settings, catalog=catalog, store=store, incidents=incidents
        ),
        alerts=alerts,
        slack_client=slack_client,
        status=StatusService(
            settings=settings,
            catalog=catalog,
            drills=drills,
            alerts=alerts,
            checklists=checklists,
            clock=clock,
        ),
    )


def load(cli_config: str | None, environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    return load_settings(config_path(cli_config, environ), environ)
