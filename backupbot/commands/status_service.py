"""`/backup status`'s facts: each database's standing (its RTO record among them),
gathered from the catalog, the drill log, the alerts and the schedules, plus the month's
checklist and the alerts that are not about one database; and `report rto`, the drill
history for auditors. Rendering is the front ends' job."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from backupbot.clock import Clock
from backupbot.commands.rto_report import RtoReport, default_since, rto_report
from backupbot.commands.schedule import jobs_from_settings, stale_rules
from backupbot.commands.status import (
    AlertSummary,
    BotStatus,
    ChecklistSummary,
    DatabaseStatus,
    DrillSummary,
    status_report,
)
from backupbot.commands.trends import ChartData, chart_data, chart_since
from backupbot.settings import Settings
from backupbot.storage.catalog import BackupCatalog

if TYPE_CHECKING:
    from backupbot.commands.provider_facts import ProviderFactsService
    from backupbot.storage.drills import DrillRecord
    from backupbot.storage.restore_record import RestoreRecord
    from backupbot.storage.restores import RestoreRequests


class Drills(Protocol):
    """`DrillService`, or its read side alone (`status_sources.DrillHistory`)."""

    def summaries(self, database: str, limit: int = 7) -> list[DrillSummary]: ...
    def rto_minutes(self, database: str) -> int: ...
    def history(self, since: datetime, database: str | None = None) -> list[DrillRecord]: ...


class Alerts(Protocol):
    """`AlertService`, or its read side alone (`status_sources.OpenAlerts`)."""

    def summaries(self) -> list[AlertSummary]: ...


class Checklists(Protocol):
    """`ChecklistService`."""

    def summary(self, now: datetime) -> ChecklistSummary | None: ...


class StatusService:
    def __init__(
        self,
        *,
        settings: Settings,
        catalog: BackupCatalog,
        drills: Drills,
        alerts: Alerts,
        checklists: Checklists,
        clock: Clock,
        providers: ProviderFactsService | None = None,
        restores: RestoreRequests | None = None,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._drills = drills
        self._alerts = alerts
        self._checklists = checklists
        self._clock = clock
        self._providers = providers
        self._restores = restores

    def report(self, database: str | None = None) -> list[DatabaseStatus]:
        """Status of one configured database, or of all in configuration order."""
        now = self._clock.now()
        dbs = [d for d in self._settings.databases if database in (None, d.name)]
        backups = {j.database: j for j in jobs_from_settings(self._settings) if j.database}
        return status_report(
            self._catalog,
            [(d.name, d.provider) for d in dbs],
            now,
            stale_afters=stale_rules(self._settings),
            next_backups={d.name: backups[d.name].next_fire(now) for d in dbs},
            timezones={d.name: d.timezone for d in dbs},
            drills={d.name: self._drills.summaries(d.name) for d in dbs},
            alerts=self._alerts.summaries(),
            rto_minutes={d.name: self._drills.rto_minutes(d.name) for d in dbs},
            recovery=self._providers.facts(d.name for d in dbs) if self._providers else None,
            restored={d.name: self._latest_in_place(d.name) for d in dbs},
        )

    def _latest_in_place(self, database: str) -> RestoreRecord | None:
        return self._restores.latest_in_place(database) if self._restores else None

    def overall(self) -> BotStatus:
        """The month's checklist and the alerts that are not about one database."""
        return BotStatus(
            checklist=self._checklists.summary(self._clock.now()),
            alerts=[a for a in self._alerts.summaries() if a.database is None],
        )

    def rto_report(self, since: datetime | None = None, database: str | None = None) -> RtoReport:
        """`report rto`: every drill since `since` (default: 90 days ago) for auditors."""
        now = self._clock.now()
        start = default_since(now) if since is None else since
        targets = {d.name: self._drills.rto_minutes(d.name) for d in self._settings.databases}
        return rto_report(self._drills.history(start, database), targets, start, now, database)

    def charts(self, database: str | None = None) -> list[ChartData]:
        """The trend chart's series of one configured database, or of each: 90 days of
        stored backups and drills, with its RTO target."""
        now = self._clock.now()
        since = chart_since(now)
        return [
            chart_data(
                d.name,
                now,
                self._catalog.stored(d.name, since=since),
                self._drills.history(since, d.name),
                self._drills.rto_minutes(d.name),
            )
            for d in self._settings.databases
            if database in (None, d.name)
        ]
