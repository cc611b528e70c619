"""The composition root: the one place that reads configuration and builds the services.
The parts they are built on are in `infrastructure.py`; the container is `services.py`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from backupbot.bot.runtime.jobs import BackgroundJobs
from backupbot.clock import Clock, SystemClock
from backupbot.commands.approvals import CachedApprovers
from backupbot.commands.backup import BackupService
from backupbot.commands.checklist import ChecklistService
from backupbot.commands.checklist_conditions import ChecklistConditions
from backupbot.commands.drill import DrillConditions, DrillService
from backupbot.commands.drill_postpone import DrillPostponer
from backupbot.commands.escalation import AlertService, BackupConditions
from backupbot.commands.escalation_ack import AckRule
from backupbot.commands.escalation_review import BreakGlassReviews
from backupbot.commands.migrations import MigrationService
from backupbot.commands.operation_notes import NoteService
from backupbot.commands.provider_facts import ProviderConditions, ProviderFactsService
from backupbot.commands.provider_points import PointsService
from backupbot.commands.restore import RestoreService
from backupbot.commands.restore_run import RestoreRunner
from backupbot.commands.restore_targets import Targets
from backupbot.commands.restore_workdir import work_root
from backupbot.commands.retention import RetentionService
from backupbot.commands.schedule import jobs_from_settings, stale_rules
from backupbot.commands.status_service import StatusService
from backupbot.settings import (
    Settings,
    SlackCredentials,
)
from backupbot.storage.agestream import Encryption
from backupbot.storage.alerts import AlertStore, BackupFacts
from backupbot.storage.artifacts import ArtifactStore
from backupbot.storage.catalog import BackupCatalog
from backupbot.storage.drill_postponements import DrillPostponements
from backupbot.storage.drills import DrillLog
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.liveness import (
    HEARTBEAT_SECONDS,
    STALE_AFTER,
)
from backupbot.storage.operation_notes import OperationNotes
from backupbot.storage.outbox import Outbox
from backupbot.storage.restores import RestoreRequests
from backupbot.storage.schedule_runs import ScheduledRuns
from backupbot.storage.state import create_state_engine, migrate

if TYPE_CHECKING:
    from slack_sdk import WebClient
    from sqlalchemy import Engine


from backupbot.bot.infrastructure import (
    SlackApproverDirectory,
    access_rules,
    approval_policy,
    build_queue,
    build_slack_client,
    build_store,
    durable_state,
)
from backupbot.bot.services import Services
from backupbot.bot.status_composition import checklist_service, status_adapter
from backupbot.bot.status_composition import load as load  # the configuration, read once
from backupbot.commands.access import Access, CachedDirectory


def encryption(settings: Settings) -> Encryption | None:
    """What backups are encrypted to (`backup.encrypt_to`); None: not encrypted."""
    backup = settings.backup
    if not backup.encrypt_to:
        return None
    return Encryption(tuple(backup.encrypt_to), backup.verify_identity)


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
        durable_queue=durable_state(settings),
        encryption=encryption(settings),
        verify=settings.backup.verify,
        jobs=settings.backup.jobs,
        work_root=work_root(settings.restore),
    )


def _restore_services(
    settings: Settings,
    engine: Engine,
    catalog: BackupCatalog,
    incidents: IncidentLog,
    store: ArtifactStore,
    backups: BackupService,
    clock: Clock,
    access: Access,
) -> tuple[RestoreRequests, RestoreRunner, RestoreService]:
    """The restore engine and the requests and approvals in front of it."""
    policy = approval_policy(settings)
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
        identity=settings.backup.verify_identity,
        targets=targets(settings),
    )
    restores = RestoreService(
        databases=settings.databases,
        catalog=catalog,
        restores=restore_requests,
        incidents=incidents,
        clock=clock,
        policy=policy,
        approvers=CachedApprovers(access),
        settings=settings.restore,
        runner=runner,
        targets=targets(settings),
    )
    return restore_requests, runner, restores


def _status_service(
    settings: Settings,
    catalog: BackupCatalog,
    drills: DrillService,
    alerts: AlertService,
    checklists: ChecklistService,
    clock: Clock,
    providers: ProviderFactsService,
    restores: RestoreRequests,
) -> StatusService:
    return StatusService(
        settings=settings,
        catalog=catalog,
        drills=drills,
        alerts=alerts,
        checklists=checklists,
        clock=clock,
        providers=providers,
        restores=restores,
    )


def _postponer(
    settings: Settings, engine: Engine, incidents: IncidentLog, clock: Clock
) -> DrillPostponer:
    drill_job = next(j for j in jobs_from_settings(settings) if j.name == "drill")
    return DrillPostponer(DrillPostponements(engine), incidents, clock, drill_job)


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
        targets=targets(settings),
    )


def targets(settings: Settings) -> Targets:
    """The configured restore targets, and the one each database's drills use."""
    return Targets(settings.targets, {n: settings.drill_target(n) for n in settings.database_names})


def _alert_service(
    settings: Settings,
    engine: Engine,
    incidents: IncidentLog,
    drills: DrillService,
    checklists: ChecklistService,
    clock: Clock,
    access: Access,
    restore_requests: RestoreRequests,
    providers: ProviderFactsService,
) -> tuple[AlertService, BreakGlassReviews]:
    """Escalation over every condition the bot watches, and the break-glass reviews
    (one of them)."""
    reviews = BreakGlassReviews(
        restore_requests, incidents, access, settings.restore.break_glass_review_hours
    )
    alerts = AlertService(
        store=AlertStore(engine),
        incidents=incidents,
        checks=[
            BackupConditions(BackupFacts(engine), stale_rules(settings)),
            DrillConditions(drills, timedelta(days=settings.drill.max_age_days)),
            ChecklistConditions(checklists),
            reviews,
            ProviderConditions(providers, settings.databases),
        ],
        levels=settings.escalation.levels,
        providers={d.name: d.provider for d in settings.databases},
        clock=clock,
        ack_rule=AckRule(settings.escalation.levels, access, access.directory),
        reack_after_minutes=settings.escalation.reack_after_minutes,
    )
    return alerts, reviews


def _directory(client: WebClient | None) -> CachedDirectory | None:
    """Slack's answers about people (user groups, guests), cached; None without Slack."""
    return CachedDirectory(SlackApproverDirectory(client)) if client else None


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
    store = store or build_store(settings.storage, settings.backup.verify)
    slack = SlackCredentials.from_env(environ)
    slack_client = build_slack_client(slack)
    backups = _backup_service(settings, catalog, incidents, store, clock)
    access = Access(access_rules(settings), _directory(slack_client))
    restore_requests, runner, restores = _restore_services(
        settings, engine, catalog, incidents, store, backups, clock, access
    )
    providers = ProviderFactsService(settings.databases, status_adapter, clock)
    checklists = checklist_service(settings, engine, incidents, clock, providers)
    drills = _drill_service(settings, engine, catalog, restore_requests, runner, incidents, clock)
    alerts, reviews = _alert_service(
        settings, engine, incidents, drills, checklists, clock, access, restore_requests, providers
    )
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
        access=access,
        reviews=reviews,
        postponements=_postponer(settings, engine, incidents, clock),
        outbox=Outbox(engine),
        notes=NoteService(OperationNotes(engine), incidents, clock),
        points=PointsService(databases=settings.databases, catalog=catalog),
        status=_status_service(
            settings, catalog, drills, alerts, checklists, clock, providers, restore_requests
        ),
        migrations=MigrationService(databases=settings.databases, catalog=catalog),
    )
