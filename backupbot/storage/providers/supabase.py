"""Supabase: the PITR window and the daily backups from GET …/database/backups; a
restore overwrites the project in place (restore-pitr to a Unix time, or a backup by
id), followed through the project's status RESTORING → ACTIVE_HEALTHY/RESTORE_FAILED.
Supabase answers a restore with an empty 201, so the operation id is the bot's own."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from backupbot.errors import ProviderError
from backupbot.settings.providers import SupabaseSettings
from backupbot.storage.providers.common import parse_time, utc
from backupbot.storage.providers.contract import (
    Into,
    ProviderHealth,
    ProviderOperation,
    RecoveryPoint,
    RecoveryWindow,
    RestorePlan,
)
from backupbot.storage.providers.http import ProviderHttp

_RUNNING = {"RESTORING", "COMING_UP", "RESTARTING", "UNKNOWN"}
# Right after the restore call the project may still say ACTIVE_HEALTHY; until it has
# been seen RESTORING (or this long has passed) that is not yet the restore's success.
START_GRACE_SECONDS = 120
_IN_PLACE = (
    "overwritten in place (Supabase restores the project itself); the bot takes its own "
    "safety dump first"
)


class SupabaseAdapter:
    provider = "supabase"

    def __init__(self, section: SupabaseSettings, database_url: str, http: ProviderHttp) -> None:
        self.section = section
        self._database_url = database_url
        self.http = http
        self._project = f"/v1/projects/{section.project_ref}"
        self._seen_restoring: set[str] = set()

    def _backups(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.http.request("GET", f"{self._project}/database/backups")
        return answer

    def recovery_window(self) -> RecoveryWindow:
        backups = self._backups()
        if not backups.get("pitr_enabled"):
            return RecoveryWindow(
                enabled=False,
                reason="point-in-time recovery is not enabled for this project (the PITR add-on)",
                notes=("the project's daily backups can be restored by id (--snapshot)",),
            )
        data = backups.get("physical_backup_data") or {}
        earliest = parse_time(data.get("earliest_physical_backup_date_unix"))
        latest = parse_time(data.get("latest_physical_backup_date_unix"))
        days = (latest - earliest).total_seconds() / 86_400 if earliest and latest else None
        return RecoveryWindow(
            enabled=True,
            earliest=earliest,
            latest=latest,
            retention_days=days,
            notes=(
                "restores overwrite the project in place; there is no restore to a new project",
            ),
        )

    def recovery_points(self) -> list[RecoveryPoint]:
        points = [
            RecoveryPoint(
                id=str(b["id"]),
                created_at=parse_time(b["inserted_at"]) or datetime.now(UTC),
                name="physical backup" if b.get("is_physical_backup") else "daily backup",
                status=str(b.get("status", "")).lower(),
            )
            for b in self._backups().get("backups", [])
        ]
        return sorted(points, key=lambda p: p.created_at)

    def plan(self, into: Into) -> RestorePlan:
        return RestorePlan(
            into="in_place",
            current_state=_IN_PLACE,
            needs_safety_dump=True,
            estimated_minutes=15,
            supported_into=("in_place",),
        )

    def restore(
        self,
        *,
        to: datetime | None = None,
        snapshot: str | None = None,
        into: Into = "in_place",
        name: str | None = None,
    ) -> ProviderOperation:
        if into != "in_place":
            raise ProviderError("Supabase restores a project only in place; use --in-place")
        if snapshot is not None:
            if not snapshot.isdigit():
                raise ProviderError(f"a Supabase backup id is a number (got {snapshot!r})")
            self.http.request(
                "POST", f"{self._project}/database/backups/restore", json={"id": int(snapshot)}
            )
            return self.operation_status(f"backup-{snapshot}-{int(time.time())}")
        if to is None:
            raise ProviderError("give a time or a backup id to restore Supabase to")
        unix = int(utc(to).timestamp())
        self.http.request(
            "POST",
            f"{self._project}/database/backups/restore-pitr",
            json={"recovery_time_target_unix": unix},
        )
        return self.operation_status(f"pitr-{unix}-{int(time.time())}")

    def operation_status(self, operation_id: str) -> ProviderOperation:
        project = self.http.request("GET", self._project)
        status = str(project.get("status", "UNKNOWN"))
        name = f"project {project.get('name', self.section.project_ref)} (in place)"
        host = (project.get("database") or {}).get("host")
        if status == "RESTORE_FAILED":
            return ProviderOperation(
                operation_id, "failed", "Supabase reports RESTORE_FAILED", name, host
            )
        if status in _RUNNING:
            self._seen_restoring.add(operation_id)
            detail = f"project status {status}"
            return ProviderOperation(operation_id, "running", detail, name, host)
        if status == "ACTIVE_HEALTHY" and self._not_started(operation_id):
            detail = "Supabase has not started the restore yet (project status ACTIVE_HEALTHY)"
            return ProviderOperation(operation_id, "running", detail, name, host)
        if status != "ACTIVE_HEALTHY":
            return ProviderOperation(operation_id, "failed", f"project status {status}", name, host)
        return ProviderOperation(
            operation_id,
            "succeeded",
            "project status ACTIVE_HEALTHY",
            name,
            host,
            connection_url=self._database_url,
        )

    def _not_started(self, operation_id: str) -> bool:
        """The operation was asked for moments ago and never seen RESTORING (ids end
        with the Unix time the restore was asked for: "pitr-<target>-<asked>")."""
        if operation_id in self._seen_restoring:
            return False
        asked = operation_id.rsplit("-", 1)[-1]
        return asked.isdigit() and time.time() - int(asked) < START_GRACE_SECONDS

    def health(self) -> ProviderHealth:
        project = self.http.request("GET", self._project)
        backups = self._backups()
        done = [
            parse_time(b["inserted_at"])
            for b in backups.get("backups", [])
            if b.get("status") == "COMPLETED"
        ]
        pitr = "on" if backups.get("pitr_enabled") else "off"
        return ProviderHealth(
            reachable=True,
            detail=f"project {project.get('name')} {project.get('status')}, PITR {pitr}",
            last_backup_at=max((d for d in done if d), default=None),
            automated_backups=bool(backups.get("walg_enabled") or done),
        )
