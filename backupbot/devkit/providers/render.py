"""A Render API stand-in: Postgres instances with a recovery status, exports, and a
point-in-time recovery that creates a NEW instance (a real database copied from a
snapshot) which stays `recovery_in_progress` for a few polls. Free instances have no
recovery; a time within 10 minutes of now is refused. Bodies are validated against the
recovery extract."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backupbot.devkit.providers.databases import (
    SPECS,
    ClusterDatabases,
    OpenApiBodies,
    PendingOperation,
)
from backupbot.devkit.providers.standin import Answer, ProviderStandIn, Request

_P = r"/postgres/(?P<id>[a-z0-9-]+)"
_STATUS = {"running": "recovery_in_progress", "finished": "available", "failed": "recovery_failed"}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


class RenderStandIn(ProviderStandIn):
    def __init__(
        self,
        token: str,
        databases: ClusterDatabases,
        *,
        postgres_id: str = "dpg-main0000000000000-a",
        database: str = "app",
        plan: str = "pro_4gb",
        polls_to_finish: int = 3,
        spec_path: Path = SPECS / "render" / "render-postgres-recovery-contract.json",
    ) -> None:
        super().__init__(token)
        self.databases = databases
        self.postgres_id = postgres_id
        self.polls_to_finish = polls_to_finish
        self.fail_next_restore = False
        self.bodies = OpenApiBodies(spec_path)
        self._ids = itertools.count(1)
        self.instances: dict[str, dict[str, Any]] = {
            postgres_id: self._instance(postgres_id, "app-db", database, plan, "available")
        }
        self.recoveries: dict[str, PendingOperation] = {}
        self.exports = [
            {"id": f"exp-{i:04d}", "createdAt": _stamp(at), "url": f"https://exports.invalid/{i}"}
            for i, at in enumerate(sorted(databases.snapshots), start=1)
        ]
        self.route("GET", _P, self._get)
        self.route("GET", _P + "/recovery", self._recovery_info)
        self.route("POST", _P + "/recovery", self._recover)
        self.route("GET", _P + "/export", self._list_exports)

    def _instance(self, pid: str, name: str, db: str, plan: str, status: str) -> dict[str, Any]:
        now = _stamp(datetime.now(UTC))
        return {
            "id": pid,
            "name": name,
            "createdAt": now,
            "updatedAt": now,
            "dashboardUrl": f"https://dashboard.render.com/d/{pid}",
            "databaseName": db,
            "databaseUser": "app",
            "highAvailabilityEnabled": False,
            "owner": {"id": "tea-1"},
            "plan": plan,
            "region": "frankfurt",
            "readReplicas": [],
            "role": "primary",
            "status": status,
            "version": "17",
            "suspended": "not_suspended",
            "suspenders": [],
            "ipAllowList": [],
            "diskAutoscalingEnabled": False,
            "connectionPool": "none",
        }

    def _find(self, request: Request) -> dict[str, Any] | Answer:
        instance = self.instances.get(request.groups["id"])
        if instance is None:
            return Answer(404, {"id": "not_found", "message": "postgres instance not found"})
        return instance

    def _get(self, request: Request) -> Answer:
        instance = self._find(request)
        if isinstance(instance, Answer):
            return instance
        pending = self.recoveries.get(instance["id"])
        if pending is not None:
            instance["status"] = _STATUS[pending.poll()]
        return Answer(200, instance)

    def _recovery_info(self, request: Request) -> Answer:
        instance = self._find(request)
        if isinstance(instance, Answer):
            return instance
        if instance["plan"] == "free" or not self.databases.snapshots:
            return Answer(200, {"recoveryStatus": "NOT_AVAILABLE"})
        return Answer(
            200, {"recoveryStatus": "AVAILABLE", "startsAt": _stamp(min(self.databases.snapshots))}
        )

    def _recover(self, request: Request) -> Answer:
        source = self._find(request)
        if isinstance(source, Answer):
            return source
        problem = self.bodies.problem("/postgres/{postgresId}/recovery", "POST", request.body)
        if problem is not None:
            return Answer(400, {"id": "invalid_input", "message": problem})
        if source["plan"] == "free":
            return Answer(
                400,
                {"id": "invalid_input", "message": "free instances have no point-in-time recovery"},
            )
        at = datetime.fromisoformat(request.body["restoreTime"].replace("Z", "+00:00"))
        if at > datetime.now(UTC) - timedelta(minutes=10):
            return Answer(
                400,
                {"id": "invalid_input", "message": "restoreTime must be at least 10 minutes ago"},
            )
        if not any(m <= at for m in self.databases.snapshots):
            return Answer(
                400, {"id": "invalid_input", "message": "restoreTime is before the recovery window"}
            )
        new_id = f"dpg-restored{next(self._ids):08d}-a"
        db, template = self.databases.new_name(new_id), self.databases.template_at(at)
        name = request.body.get("restoreName") or f"{source['name']}-recovered"
        self.instances[new_id] = self._instance(
            new_id, name, db, source["plan"], "recovery_in_progress"
        )
        fail, self.fail_next_restore = self.fail_next_restore, False
        self.recoveries[new_id] = PendingOperation(
            self.polls_to_finish, lambda: self.databases.copy(template, db), fail=fail
        )
        return Answer(200, self.instances[new_id])

    def _list_exports(self, request: Request) -> Answer:
        source = self._find(request)
        return source if isinstance(source, Answer) else Answer(200, self.exports)
