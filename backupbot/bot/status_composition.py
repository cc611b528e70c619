"""The composition root's light part: `load` (the configuration, read and validated
here) and what `backupbot status` builds: the state database (migrated) and what status
reads from it, nothing else. No artifact store, job queue or Slack client, and none of
the backup, restore, approval or escalation machinery (their modules are not even
imported), so the CLI's most frequent command starts quickly. It reads through the same
stores and rules as `composition.build_services`, which builds the same `StatusService`
over the full services."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backupbot.clock import Clock, SystemClock
from backupbot.commands.checklist import ChecklistService
from backupbot.commands.provider_facts import ProviderFactsService
from backupbot.commands.status_service import StatusService
from backupbot.commands.status_sources import DrillHistory, OpenAlerts
from backupbot.settings import DatabaseSettings, Settings, config_path, load_settings
from backupbot.storage.alerts import AlertStore
from backupbot.storage.catalog import BackupCatalog
from backupbot.storage.checklists import ChecklistEvidenceQueries, Checklists
from backupbot.storage.drills import DrillLog
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.liveness import STALE_AFTER
from backupbot.storage.restores import RestoreRequests
from backupbot.storage.state import create_state_engine, migrate

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from backupbot.storage.providers.contract import ProviderAdapter


def load(cli_config: str | None, environ: Mapping[str, str] | None = None) -> Settings:
    """The configuration (`--config`, `$BACKUPBOT_CONFIG` or ./backupbot.yml), validated."""
    environ = os.environ if environ is None else environ
    return load_settings(config_path(cli_config, environ), environ)


@dataclass
class StatusServices:
    """What `backupbot status` uses (the CLI records a refusal in `incidents`)."""

    settings: Settings
    clock: Clock
    incidents: IncidentLog
    status: StatusService


def status_adapter(db: DatabaseSettings) -> ProviderAdapter | None:
    """A provider adapter for status reads and alert checks: short timeouts, one retry,
    so an unreachable provider API costs a status reply seconds, not minutes (restores
    build their own, patient adapter)."""
    from backupbot.storage.providers.factory import adapter_for  # httpx: only when used
    from backupbot.storage.providers.http import RetryPolicy

    return adapter_for(db, timeout=5.0, policy=RetryPolicy(attempts=2, max_delay=2.0))


def checklist_service(
    settings: Settings,
    engine: Engine,
    incidents: IncidentLog,
    clock: Clock,
    providers: ProviderFactsService,
) -> ChecklistService:
    return ChecklistService(
        settings=settings,
        checklists=Checklists(engine),
        evidence=ChecklistEvidenceQueries(engine),
        incidents=incidents,
        clock=clock,
        providers=providers,
    )


def build_status_services(settings: Settings, *, clock: Clock | None = None) -> StatusServices:
    """Open the state database (migrating it) and the services status reads."""
    clock = clock or SystemClock()
    engine = create_state_engine(settings.state_url)
    migrate(engine)
    catalog = BackupCatalog(engine)
    incidents = IncidentLog(engine)
    providers = ProviderFactsService(settings.databases, status_adapter, clock)
    status = StatusService(
        settings=settings,
        catalog=catalog,
        drills=DrillHistory(
            DrillLog(engine, stale_after=STALE_AFTER), settings.databases, settings.restore
        ),
        alerts=OpenAlerts(AlertStore(engine)),
        checklists=checklist_service(settings, engine, incidents, clock, providers),
        clock=clock,
        providers=providers,
        restores=RestoreRequests(engine, stale_after=STALE_AFTER),
    )
    return StatusServices(settings, clock, incidents, status)
