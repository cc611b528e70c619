"""A Supabase Management API stand-in: one project with daily backups, a PITR window
and an in-place restore that turns the project RESTORING for a few polls, then
ACTIVE_HEALTHY (the configured database replaced by a snapshot's copy) or
RESTORE_FAILED. Request bodies are validated against the OpenAPI spec."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backupbot.devkit.providers.databases import (
    SPECS,
    ClusterDatabases,
    OpenApiBodies,
    PendingOperation,
)
from backupbot.devkit.providers.standin import Answer, ProviderStandIn, Request

_P = r"/v1/projects/(?P<ref>[a-z]{20})"


class SupabaseStandIn(ProviderStandIn):
    def __init__(
        self,
        token: str,
        databases: ClusterDatabases,
        *,
        project_ref: str = "abcdefghijklmnopqrst",
        database: str = "postgres",
        pitr_enabled: bool = True,
        polls_to_finish: int = 3,
        spec_path: Path = SPECS / "supabase" / "openapi.json",
    ) -> None:
        super().__init__(token)
        self.databases = databases
        self.project_ref = project_ref
        self.database = database
        self.pitr_enabled = pitr_enabled
        self.polls_to_finish = polls_to_finish
        self.fail_next_restore = False
        # the project still answers ACTIVE_HEALTHY this many times after a restore call
        self.restoring_after_polls = 0
        self._quiet_polls = 0
        self.bodies = OpenApiBodies(spec_path)
        self.restore: PendingOperation | None = None
        moments = sorted(databases.snapshots)
        self.backups = {i: (at, databases.snapshots[at]) for i, at in enumerate(moments, start=101)}
        self.route("GET", _P, self._project)
        self.route("GET", _P + "/database/backups", self._list_backups)
        self.route("POST", _P + "/database/backups/restore-pitr", self._restore_pitr)
        self.route("POST", _P + "/database/backups/restore", self._restore_backup)

    def _start(self, template: str) -> Answer:
        fail, self.fail_next_restore = self.fail_next_restore, False
        self._quiet_polls = self.restoring_after_polls
        self.restore = PendingOperation(
            self.polls_to_finish, lambda: self.databases.replace(self.database, template), fail=fail
        )
        return Answer(201, None)

    def _invalid(self, request: Request, path: str) -> Answer | None:
        if request.groups["ref"] != self.project_ref:
            return Answer(404, {"message": "Project not found"})
        problem = self.bodies.problem(path, request.method, request.body)
        return None if problem is None else Answer(400, {"message": problem})

    def _project(self, request: Request) -> Answer:
        if request.groups["ref"] != self.project_ref:
            return Answer(404, {"message": "Project not found"})
        status = "ACTIVE_HEALTHY"
        if self._quiet_polls > 0:
            self._quiet_polls -= 1
        elif self.restore is not None:
            state = self.restore.poll()
            status = {"running": "RESTORING", "failed": "RESTORE_FAILED"}.get(state, status)
        return Answer(
            200,
            {
                "id": self.project_ref,
                "ref": self.project_ref,
                "organization_id": "org",
                "organization_slug": "org",
                "name": "app",
                "region": "eu-central-1",
                "created_at": "2026-01-01T00:00:00Z",
                "status": status,
                "database": {
                    "host": self.databases.host,
                    "version": "17",
                    "postgres_engine": "17",
                    "release_channel": "ga",
                },
            },
        )

    def _list_backups(self, request: Request) -> Answer:
        if request.groups["ref"] != self.project_ref:
            return Answer(404, {"message": "Project not found"})
        moments = sorted(self.databases.snapshots)
        body: dict[str, Any] = {
            "region": "eu-central-1",
            "walg_enabled": True,
            "pitr_enabled": self.pitr_enabled,
            "backups": [
                {
                    "id": i,
                    "is_physical_backup": True,
                    "status": "COMPLETED",
                    "inserted_at": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                }
                for i, (at, _) in self.backups.items()
            ],
            "physical_backup_data": {},
        }
        if self.pitr_enabled and moments:
            body["physical_backup_data"] = {
                "earliest_physical_backup_date_unix": int(moments[0].timestamp()),
                "latest_physical_backup_date_unix": int(datetime.now(UTC).timestamp()),
            }
        return Answer(200, body)

    def _restore_pitr(self, request: Request) -> Answer:
        invalid = self._invalid(request, "/v1/projects/{ref}/database/backups/restore-pitr")
        if invalid is not None:
            return invalid
        if not self.pitr_enabled:
            return Answer(400, {"message": "PITR is not enabled for this project."})
        at = datetime.fromtimestamp(request.body["recovery_time_target_unix"], UTC)
        if at > datetime.now(UTC) or not any(m <= at for m in self.databases.snapshots):
            return Answer(400, {"message": "Recovery time target is outside the PITR window."})
        return self._start(self.databases.template_at(at))

    def _restore_backup(self, request: Request) -> Answer:
        invalid = self._invalid(request, "/v1/projects/{ref}/database/backups/restore")
        if invalid is not None:
            return invalid
        backup = self.backups.get(request.body["id"])
        if backup is None:
            return Answer(404, {"message": "Backup not found"})
        return self._start(backup[1])
