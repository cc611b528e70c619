"""A Neon API stand-in: one project with branches, endpoints, snapshots and operations
that finish after a few polls. Creating a branch at a point in time, restoring a branch
in place and restoring a snapshot create real databases on the test cluster."""

from __future__ import annotations

import itertools
import uuid
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

_P = r"/projects/(?P<project>[a-z0-9-]+)"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NeonStandIn(ProviderStandIn):
    """`database` is the cluster database the configured branch's database is;
    `databases.snapshots` are the history (and the Neon snapshots listed)."""

    def __init__(
        self,
        token: str,
        databases: ClusterDatabases,
        *,
        project_id: str = "quiet-sky-123456",
        branch_id: str = "br-main-000001",
        database: str = "app",
        history_retention_seconds: int = 7 * 86_400,
        polls_to_finish: int = 3,
        spec_path: Path = SPECS / "neon" / "openAPIDefinition.json",
    ) -> None:
        super().__init__(token)
        self.databases = databases
        self.project_id = project_id
        self.history_retention_seconds = history_retention_seconds
        self.polls_to_finish = polls_to_finish
        self.fail_next_restore = False
        self.bodies = OpenApiBodies(spec_path)
        self._ids = itertools.count(2)
        created = min(databases.snapshots, default=datetime.now(UTC)) - timedelta(hours=1)
        self.branches: dict[str, dict[str, Any]] = {}
        self.branch_db: dict[str, str] = {}
        self._add_branch(
            branch_id, "main", None, database, created_at=created.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        self.operations: dict[str, tuple[PendingOperation, dict[str, Any]]] = {}
        self.snapshots: list[dict[str, Any]] = [
            {
                "id": f"snap-{i:04d}",
                "name": f"daily-{at:%Y%m%d-%H%M}",
                "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "created_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "source_branch_id": branch_id,
                "manual": False,
            }
            for i, at in enumerate(sorted(databases.snapshots), start=1)
        ]
        self.snapshot_db = {
            snap["id"]: databases.snapshots[at]
            for snap, at in zip(self.snapshots, sorted(databases.snapshots), strict=True)
        }
        self.route("GET", _P, self._project)
        self.route("GET", _P + r"/branches/(?P<branch>[a-z0-9-]+)", self._get_branch)
        self.route("POST", _P + r"/branches", self._create_branch)
        self.route("POST", _P + r"/branches/(?P<branch>[a-z0-9-]+)/restore", self._restore_branch)
        self.route("GET", _P + r"/operations/(?P<op>[a-z0-9-]+)", self._operation)
        self.route("GET", _P + r"/snapshots", self._list_snapshots)
        self.route("POST", _P + r"/snapshots/(?P<snap>[a-z0-9-]+)/restore", self._restore_snapshot)
        self.route("GET", _P + r"/connection_uri", self._connection_uri)

    # -- state --------------------------------------------------------------------

    def _add_branch(
        self, branch_id: str, name: str, parent: str | None, db: str, **extra: Any
    ) -> dict[str, Any]:
        branch = {
            "id": branch_id,
            "project_id": self.project_id,
            "name": name,
            "current_state": "ready",
            "state_changed_at": _now(),
            "creation_source": "console",
            "created_at": _now(),
            "updated_at": _now(),
            "default": parent is None,
            "protected": False,
            "cpu_used_sec": 0,
            "active_time_seconds": 0,
            "compute_time_seconds": 0,
            "written_data_bytes": 0,
            "data_transfer_bytes": 0,
            **({"parent_id": parent} if parent else {}),
            **extra,
        }
        self.branches[branch_id] = branch
        self.branch_db[branch_id] = db
        return branch

    def _new_branch_id(self) -> str:
        return f"br-restored-{next(self._ids):06d}"

    def _operations(
        self, branch_id: str, work: Any, actions: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        fail, self.fail_next_restore = self.fail_next_restore, False
        pending = PendingOperation(self.polls_to_finish, work, fail=fail)
        listed = []
        for action in actions:
            op: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "project_id": self.project_id,
                "branch_id": branch_id,
                "action": action,
                "status": "running",
                "failures_count": 0,
                "created_at": _now(),
                "updated_at": _now(),
                "total_duration_ms": 0,
            }
            self.operations[op["id"]] = (pending, op)
            listed.append(op)
        return listed

    def _endpoint(self, branch_id: str) -> dict[str, Any]:
        return {
            "id": f"ep-{branch_id.removeprefix('br-')}",
            "host": self.databases.host,
            "project_id": self.project_id,
            "branch_id": branch_id,
            "type": "read_write",
            "current_state": "idle",
            "pooler_enabled": False,
            "pooler_mode": "transaction",
        }

    def _invalid(self, request: Request, path: str) -> Answer | None:
        problem = self.bodies.problem(path, request.method, request.body)
        return None if problem is None else Answer(400, {"code": "", "message": problem})

    def _at(self, when: str | None) -> datetime | Answer:
        if when is None:
            return datetime.now(UTC)
        try:
            moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            return Answer(400, {"code": "", "message": f"invalid timestamp {when!r}"})
        oldest = datetime.now(UTC) - timedelta(seconds=self.history_retention_seconds)
        if moment < oldest or moment > datetime.now(UTC):
            return Answer(
                400, {"code": "", "message": "timestamp is outside the history retention window"}
            )
        return moment

    # -- handlers -----------------------------------------------------------------

    def _project(self, request: Request) -> Answer:
        if request.groups["project"] != self.project_id:
            return Answer(404, {"code": "", "message": "project not found"})
        return Answer(
            200,
            {
                "project": {
                    "id": self.project_id,
                    "name": "app",
                    "pg_version": 17,
                    "region_id": "aws-eu-central-1",
                    "history_retention_seconds": self.history_retention_seconds,
                    "created_at": _now(),
                }
            },
        )

    def _get_branch(self, request: Request) -> Answer:
        branch = self.branches.get(request.groups["branch"])
        if branch is None:
            return Answer(404, {"code": "", "message": "branch not found"})
        return Answer(200, {"branch": branch, "annotation": {}})

    def _create_branch(self, request: Request) -> Answer:
        invalid = self._invalid(request, "/projects/{project_id}/branches")
        if invalid is not None:
            return invalid
        spec = (request.body or {}).get("branch", {})
        parent = spec.get("parent_id") or next(iter(self.branches))
        at = self._at(spec.get("parent_timestamp"))
        if isinstance(at, Answer):
            return at
        branch_id = self._new_branch_id()
        db = self.databases.new_name(branch_id)
        template = self.databases.template_at(at)
        branch = self._add_branch(
            branch_id,
            spec.get("name") or branch_id,
            parent,
            db,
            parent_timestamp=at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        ops = self._operations(
            branch_id, lambda: self.databases.copy(template, db), ("create_branch", "start_compute")
        )
        endpoints = [self._endpoint(branch_id)] if (request.body or {}).get("endpoints") else []
        return Answer(
            201,
            {
                "branch": branch,
                "endpoints": endpoints,
                "operations": ops,
                "roles": [],
                "databases": [],
                "connection_uris": [],
            },
        )

    def _restore_branch(self, request: Request) -> Answer:
        invalid = self._invalid(request, "/projects/{project_id}/branches/{branch_id}/restore")
        if invalid is not None:
            return invalid
        body, branch_id = request.body, request.groups["branch"]
        if branch_id not in self.branches:
            return Answer(404, {"code": "", "message": "branch not found"})
        if body["source_branch_id"] == branch_id and not (
            (body.get("source_timestamp") or body.get("source_lsn"))
            and body.get("preserve_under_name")
        ):
            return Answer(
                400,
                {
                    "code": "",
                    "message": "restoring a branch onto itself needs a timestamp or lsn "
                    "and preserve_under_name",
                },
            )
        at = self._at(body.get("source_timestamp"))
        if isinstance(at, Answer):
            return at
        template, target = self.databases.template_at(at), self.branch_db[branch_id]
        kept_id = self._new_branch_id()
        kept_db = self.databases.new_name(kept_id)
        self._add_branch(kept_id, body["preserve_under_name"], branch_id, kept_db)

        def work() -> None:
            self.databases.replace(target, template, keep_as=kept_db)

        ops = self._operations(branch_id, work, ("create_timeline", "apply_config"))
        return Answer(200, {"branch": self.branches[branch_id], "operations": ops})

    def _operation(self, request: Request) -> Answer:
        entry = self.operations.get(request.groups["op"])
        if entry is None:
            return Answer(404, {"code": "", "message": "operation not found"})
        pending, op = entry
        state = pending.poll()
        shown = {**op, "status": state, "updated_at": _now()}
        if pending.error:
            shown["error"] = pending.error
        return Answer(200, {"operation": shown})

    def _list_snapshots(self, request: Request) -> Answer:
        return Answer(200, {"snapshots": self.snapshots})

    def _restore_snapshot(self, request: Request) -> Answer:
        snap = next((s for s in self.snapshots if s["id"] == request.groups["snap"]), None)
        if snap is None:
            return Answer(404, {"code": "", "message": "snapshot not found"})
        invalid = self._invalid(request, "/projects/{project_id}/snapshots/{snapshot_id}/restore")
        if invalid is not None:
            return invalid
        template = self.snapshot_db[snap["id"]]
        branch_id = self._new_branch_id()
        db = self.databases.new_name(branch_id)
        name = (request.body or {}).get("name") or f"{snap['name']}-restored"
        branch = self._add_branch(branch_id, name, snap["source_branch_id"], db)
        ops = self._operations(
            branch_id, lambda: self.databases.copy(template, db), ("create_branch", "start_compute")
        )
        return Answer(
            200, {"branch": branch, "endpoints": [self._endpoint(branch_id)], "operations": ops}
        )

    def _connection_uri(self, request: Request) -> Answer:
        branch_id = request.params.get("branch_id") or next(iter(self.branches))
        if (
            branch_id not in self.branch_db
            or "database_name" not in request.params
            or "role_name" not in request.params
        ):
            return Answer(
                400, {"code": "", "message": "branch_id, database_name and role_name are required"}
            )
        return Answer(200, {"uri": self.databases.url(self.branch_db[branch_id])})
