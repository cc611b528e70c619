"""Render: the recovery status and window from GET /postgres/{id}/recovery; a
point-in-time recovery creates a NEW instance (never within 10 minutes of now; free
instances have none), followed through the new instance's status. Exports are listed
as points: they are dump files to download, not something Render restores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from backupbot.errors import ProviderError
from backupbot.settings.providers import RenderSettings
from backupbot.storage.providers.common import host_of, iso, parse_time, url_with, utc
from backupbot.storage.providers.contract import (
    Into,
    ProviderHealth,
    ProviderOperation,
    RecoveryPoint,
    RecoveryWindow,
    RestorePlan,
)
from backupbot.storage.providers.http import ProviderHttp

NOT_WITHIN = timedelta(minutes=10)  # Render refuses a recovery time closer to now
_RUNNING = {"creating", "recovery_in_progress", "updating_instance", "config_restart", "unknown"}
_NOTES = (
    "a recovery creates a new instance; the current one is untouched",
    "Render cannot restore to within 10 minutes of now",
    "Render keeps 3 days of recovery on Hobby workspaces, 7 days on Pro or higher",
)


class RenderAdapter:
    provider = "render"

    def __init__(self, section: RenderSettings, database_url: str, http: ProviderHttp) -> None:
        self.section = section
        self._database_url = database_url
        self.http = http
        self._path = f"/postgres/{section.postgres_id}"

    def _detail(self, postgres_id: str | None = None) -> dict[str, Any]:
        path = f"/postgres/{postgres_id}" if postgres_id else self._path
        detail: dict[str, Any] = self.http.request("GET", path)
        return detail

    def recovery_window(self) -> RecoveryWindow:
        plan = str(self._detail().get("plan", ""))
        if plan == "free":
            return RecoveryWindow(
                enabled=False,
                reason="free Render instances have no point-in-time recovery",
                notes=("upgrade the instance to a paid plan for point-in-time recovery",),
            )
        info = self.http.request("GET", f"{self._path}/recovery")
        status = info.get("recoveryStatus")
        if status != "AVAILABLE":
            reason = {
                "BACKUP_NOT_READY": "Render's first backup of this instance is not ready yet",
                "NOT_AVAILABLE": "Render reports point-in-time recovery as not available",
            }.get(str(status), f"Render reports recovery status {status}")
            return RecoveryWindow(enabled=False, reason=reason, notes=_NOTES)
        now = datetime.now(UTC)
        earliest = parse_time(info.get("startsAt"))
        days = (now - earliest).total_seconds() / 86_400 if earliest else None
        return RecoveryWindow(
            enabled=True,
            earliest=earliest,
            latest=now - NOT_WITHIN,
            retention_days=days,
            notes=_NOTES,
        )

    def recovery_points(self) -> list[RecoveryPoint]:
        exports = self.http.request("GET", f"{self._path}/export") or []
        points = [
            RecoveryPoint(
                id=e["id"],
                created_at=parse_time(e["createdAt"]) or datetime.now(UTC),
                name="export (a dump file to download)",
                status="available" if e.get("url") else "pending",
            )
            for e in exports
        ]
        return sorted(points, key=lambda p: p.created_at)

    def plan(self, into: Into) -> RestorePlan:
        return RestorePlan(
            into="new",
            current_state=_NOTES[0],
            needs_safety_dump=False,
            estimated_minutes=20,
            supported_into=("new",),
        )

    def restore(
        self,
        *,
        to: datetime | None = None,
        snapshot: str | None = None,
        into: Into = "new",
        name: str | None = None,
    ) -> ProviderOperation:
        if into != "new":
            raise ProviderError(
                "Render recovers into a new instance only; it cannot restore in place"
            )
        if snapshot is not None or to is None:
            raise ProviderError(
                "Render restores to a point in time; its exports are dump files, not restorable "
                "through its API"
            )
        moment = utc(to)
        if moment > datetime.now(UTC) - NOT_WITHIN:
            raise ProviderError(
                f"Render cannot restore to {iso(moment)}: the time must be at least 10 minutes "
                "ago; choose an earlier time"
            )
        source = self._detail()
        body = {
            "restoreTime": iso(moment),
            "restoreName": name or f"{source.get('name', 'db')}-{moment:%Y%m%d-%H%M}",
        }
        created = self.http.request("POST", f"{self._path}/recovery", json=body)
        return self._operation(created)

    def operation_status(self, operation_id: str) -> ProviderOperation:
        return self._operation(self._detail(operation_id))

    def _operation(self, detail: dict[str, Any]) -> ProviderOperation:
        new_id, status = str(detail["id"]), str(detail.get("status", "unknown"))
        name = f"instance {detail.get('name', new_id)} ({new_id})"
        configured = host_of(self._database_url) or ""
        # Render's hosts are named after the instance id (dpg-…-a.<region>-postgres.render.com)
        host = configured.replace(self.section.postgres_id, new_id)
        if status in _RUNNING:
            return ProviderOperation(new_id, "running", f"status {status}", name, host)
        if status != "available":
            return ProviderOperation(new_id, "failed", f"Render reports {status}", name, host)
        url = url_with(self._database_url, host=host, dbname=detail.get("databaseName"))
        return ProviderOperation(
            new_id, "succeeded", "status available", name, host, connection_url=url
        )

    def health(self) -> ProviderHealth:
        detail = self._detail()
        plan = str(detail.get("plan", "unknown"))
        recovery = "none (free plan)"
        if plan != "free":
            recovery = str(self.http.request("GET", f"{self._path}/recovery").get("recoveryStatus"))
        return ProviderHealth(
            reachable=True,
            detail=(
                f"instance {detail.get('name')} {detail.get('status')}, plan {plan}, "
                f"recovery {recovery}"
            ),
            automated_backups=plan != "free",
        )
