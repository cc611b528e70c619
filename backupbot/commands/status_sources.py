"""What `/backup status` reads of drills and alerts, apart from the services that run
them: `DrillService` and `AlertService` answer these reads through the classes here, and
the status-only composition (`bot/status_composition.py`) builds them alone, so
`backupbot status` starts without the restore engine or the escalation checks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from backupbot.commands.restore_model import rto_minutes
from backupbot.commands.status import AlertSummary, DrillSummary
from backupbot.settings import DatabaseSettings, RestoreSettings
from backupbot.storage.alerts import AlertRecord, AlertStore
from backupbot.storage.drills import DrillLog, DrillRecord


class DrillHistory:
    """The drill log as status reads it: the last drills, the RTO each is judged by."""

    def __init__(
        self, drills: DrillLog, databases: Sequence[DatabaseSettings], settings: RestoreSettings
    ) -> None:
        self._drills = drills
        self._databases = {d.name: d for d in databases}
        self._settings = settings

    def rto_minutes(self, database: str) -> int:
        return rto_minutes(self._databases, self._settings, database)

    def recent(self, database: str, limit: int = 6) -> list[DrillRecord]:
        return self._drills.recent(database, limit)  # newest first

    def summaries(self, database: str, limit: int = 7) -> list[DrillSummary]:
        """What `/backup status` shows: the last drills (the RTO record), newest first."""
        return [DrillSummary.from_record(r) for r in self.recent(database, limit)]

    def history(self, since: datetime, database: str | None = None) -> list[DrillRecord]:
        """Every drill (of `database`, or of all) started at or after `since`, oldest first."""
        return self._drills.since(since, database)


class OpenAlerts:
    """The open alerts, as `/backup status` shows them."""

    def __init__(self, store: AlertStore) -> None:
        self._store = store

    def open_alerts(self) -> list[AlertRecord]:
        """Open alerts, oldest first."""
        return self._store.open_alerts()

    def summaries(self) -> list[AlertSummary]:
        return [
            AlertSummary(
                id=a.id,
                condition=a.condition,
                database=a.database,
                summary=a.summary_phrase,
                opened_at=a.opened_at,
                acknowledged_by=a.acknowledged_by,
                acknowledged_at=a.acknowledged_at,
            )
            for a in self.open_alerts()
        ]
