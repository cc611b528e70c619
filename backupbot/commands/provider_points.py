"""`/backup points app`: everything a database can be restored to, in one list.

The provider's point-in-time window (any moment in it: `--to`), its snapshots
(`--snapshot ID`) and the bot's own verified backups (a backup id), newest first, each
with how to ask for it. A provider whose API fails is said so beside the bot's backups,
which are always listed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from backupbot.commands.restore_model import RESTORE_USAGE
from backupbot.errors import BackupbotError, UsageError
from backupbot.settings import DatabaseSettings
from backupbot.storage.catalog import SUCCEEDED, BackupCatalog
from backupbot.storage.providers.contract import ProviderAdapter, RecoveryWindow
from backupbot.storage.providers.factory import adapter_for

MAX_DUMPS = 10
MAX_SNAPSHOTS = 10


@dataclass(frozen=True)
class Point:
    """One thing to restore to: `kind` is `window`, `snapshot` or `backup`; `args` are
    the words after `restore <db>` that ask for it."""

    kind: str
    at: datetime | None
    ident: str
    args: tuple[str, ...]
    until: datetime | None = None  # the window's end
    label: str | None = None
    size_bytes: int | None = None
    status: str | None = None


@dataclass(frozen=True)
class PointsReport:
    database: str
    provider: str | None  # with a provider section; else None
    window: RecoveryWindow | None = None
    points: list[Point] = field(default_factory=list)
    provider_error: str | None = None


class PointsService:
    def __init__(
        self,
        *,
        databases: Sequence[DatabaseSettings],
        catalog: BackupCatalog,
        adapters: Callable[[DatabaseSettings], ProviderAdapter | None] = adapter_for,
    ) -> None:
        self._databases = {d.name: d for d in databases}
        self._catalog = catalog
        self._adapters = adapters

    def points(self, database: str) -> PointsReport:
        db = self._databases.get(database)
        if db is None:
            raise UsageError(f"There is no configured database named {database!r}.", RESTORE_USAGE)
        dumps = [
            Point(
                "backup",
                b.started_at,
                b.id,
                (b.id,),
                label=b.label,
                size_bytes=b.stored_size,
                status="verified",
            )
            for b in self._catalog.recent(database, MAX_DUMPS * 4)
            if b.status == SUCCEEDED
        ][:MAX_DUMPS]
        adapter = self._adapters(db)
        if adapter is None:
            return PointsReport(database, None, points=dumps)
        try:
            window = adapter.recovery_window()
            snapshots = adapter.recovery_points()[-MAX_SNAPSHOTS:]
        except BackupbotError as exc:
            return PointsReport(database, adapter.provider, points=dumps, provider_error=str(exc))
        provided = [
            Point(
                "snapshot",
                s.created_at,
                s.id,
                ("--snapshot", s.id),
                label=s.name,
                size_bytes=s.size_bytes,
                status=s.status,
            )
            for s in snapshots
        ]
        listed = sorted(
            provided + dumps, key=lambda p: p.at.timestamp() if p.at else 0.0, reverse=True
        )
        if window.enabled:
            span = Point(
                "window", window.earliest, "point in time", ("--to", "TIME"), until=window.latest
            )
            listed.insert(0, span)
        return PointsReport(database, adapter.provider, window, listed)
