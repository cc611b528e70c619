"""The composition root: the one place that reads configuration and builds clients."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from backupbot.bot.jobs import BackgroundJobs
from backupbot.clock import Clock, SystemClock
from backupbot.commands.backup import BackupService
from backupbot.commands.status import DatabaseStatus, status_report
from backupbot.settings import (
    Settings,
    SlackCredentials,
    StorageSettings,
    config_path,
    load_settings,
)
from backupbot.storage.artifacts import ArtifactStore
from backupbot.storage.catalog import BackupCatalog
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.local_store import LocalStore
from backupbot.storage.state import create_state_engine, migrate


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


@dataclass
class Services:
    settings: Settings
    slack: SlackCredentials
    clock: Clock
    catalog: BackupCatalog
    incidents: IncidentLog
    store: ArtifactStore
    backups: BackupService
    jobs: BackgroundJobs = field(default_factory=BackgroundJobs)

    @property
    def stale_after(self) -> timedelta:
        return timedelta(hours=self.settings.backup.stale_after_hours)

    def status_report(self, database: str | None = None) -> list[DatabaseStatus]:
        """Status of one configured database, or of all in configuration order."""
        dbs = [d for d in self.settings.databases if database in (None, d.name)]
        return status_report(
            self.catalog,
            [(d.name, d.provider) for d in dbs],
            self.clock.now(),
            self.stale_after,
        )

    def close(self) -> None:
        self.jobs.shutdown()


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
    catalog = BackupCatalog(engine, stale_after=timedelta(minutes=15))
    incidents = IncidentLog(engine)
    store = store or build_store(settings.storage)
    backups = BackupService(
        databases=settings.databases,
        catalog=catalog,
        incidents=incidents,
        store=store,
        clock=clock,
        compression_level=settings.backup.compression_level,
        compression_threads=settings.backup.compression_threads,
        pg_bin_dirs=settings.backup.pg_bin_dirs,
    )
    return Services(
        settings=settings,
        slack=SlackCredentials.from_env(environ),
        clock=clock,
        catalog=catalog,
        incidents=incidents,
        store=store,
        backups=backups,
    )


def load(cli_config: str | None, environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    return load_settings(config_path(cli_config, environ), environ)
