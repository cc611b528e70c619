"""`status`: where each database's backups stand, and what is worrying, in plain words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from backupbot.commands import humanize
from backupbot.storage.catalog import FAILED, SUCCEEDED, BackupCatalog, BackupRecord


@dataclass(frozen=True)
class DatabaseStatus:
    name: str
    provider: str
    now: datetime
    last_success: BackupRecord | None
    last_failure: BackupRecord | None
    running: BackupRecord | None
    kept: int
    warnings: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.warnings


def database_status(
    catalog: BackupCatalog,
    name: str,
    provider: str,
    now: datetime,
    stale_after: timedelta = timedelta(hours=26),
) -> DatabaseStatus:
    ok = catalog.latest(name, SUCCEEDED)
    bad = catalog.latest(name, FAILED)
    warnings = []
    if ok is None:
        warnings.append("No verified backup yet. Run `/backup now " + name + "`.")
    elif now - ok.started_at > stale_after:
        hours = int(stale_after.total_seconds() // 3600)
        warnings.append(
            f"No verified backup in the last {hours} h: the newest is "
            f"{humanize.age(ok.started_at, now)}. Check the schedule or run `/backup now {name}`."
        )
    if bad is not None and (ok is None or bad.started_at > ok.started_at):
        warnings.append(f"The latest backup attempt failed: {bad.error}")
    return DatabaseStatus(
        name=name,
        provider=provider,
        now=now,
        last_success=ok,
        last_failure=bad,
        running=catalog.running(name),
        kept=catalog.count(name, SUCCEEDED),
        warnings=warnings,
    )


def status_report(
    catalog: BackupCatalog,
    databases: Sequence[tuple[str, str]],
    now: datetime,
    stale_after: timedelta = timedelta(hours=26),
) -> list[DatabaseStatus]:
    """Status of each `(name, provider)` given, in configuration order."""
    return [database_status(catalog, n, p, now, stale_after) for n, p in databases]
