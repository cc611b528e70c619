"""A Railway GraphQL stand-in: one environment with a Postgres service and its volume
instance, volume backups and schedules, and workflows that run for a few polls. A
backup restore replaces the configured database in place; a PITR restore creates a new
service (a real database) whose variables hold DATABASE_PUBLIC_URL. Each operation's
name and variables are checked against the introspection schema's arguments."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backupbot.devkit.providers.databases import SPECS, ClusterDatabases, PendingOperation
from backupbot.devkit.providers.standin import Answer, ProviderStandIn, Request

_ROOT = re.compile(r"^\s*(query|mutation)\b[^{]*\{\s*(\w+)\s*(?:\(([^)]*)\))?", re.S)
_HEADERS = {"project": "project-access-token", "team": "team-access-token"}
_STATUS = {"running": "Running", "finished": "Complete", "failed": "Error"}


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _errors(message: str) -> Answer:
    return Answer(200, {"errors": [{"message": message}], "data": None})


class GraphQLArgs:
    """The root fields of Query and Mutation and their arguments (required = NON_NULL)."""

    def __init__(self, schema_path: Path) -> None:
        schema = json.loads(schema_path.read_text(encoding="utf-8"))["data"]["__schema"]
        types = {t["name"]: t for t in schema["types"]}
        self.fields: dict[tuple[str, str], dict[str, bool]] = {}
        for kind, root in (("query", schema["queryType"]), ("mutation", schema["mutationType"])):
            for f in types[root["name"]]["fields"]:
                self.fields[(kind, f["name"])] = {
                    a["name"]: a["type"]["kind"] == "NON_NULL" for a in f["args"]
                }

    def problem(self, kind: str, field: str, args: set[str]) -> str | None:
        known = self.fields.get((kind, field))
        if known is None:
            return f'Cannot query field "{field}" on type "{kind.title()}"'
        unknown = args - set(known)
        missing = {name for name, required in known.items() if required} - args
        if unknown or missing:
            return f"{field}: unknown arguments {sorted(unknown)}, missing {sorted(missing)}"
        return None


class RailwayStandIn(ProviderStandIn):
    def __init__(
        self,
        token: str,
        databases: ClusterDatabases,
        *,
        database: str = "railway",
        token_kind: str = "project",
        volume_instance_id: str = "vi-0000-main",
        environment_id: str = "env-0000-prod",
        service_id: str = "svc-0000-postgres",
        polls_to_finish: int = 3,
        schema_path: Path = SPECS / "railway" / "schema.json",
    ) -> None:
        super().__init__(token, base_path="/graphql/v2")
        self.databases = databases
        self.token_kind = token_kind
        self.database = database
        self.polls_to_finish = polls_to_finish
        self.fail_next_restore = False
        self.graphql = GraphQLArgs(schema_path)
        self.volume = {
            "id": volume_instance_id,
            "serviceId": service_id,
            "environmentId": environment_id,
            "state": "READY",
            "mountPath": "/var/lib/postgresql/data",
            "volume": {"id": "vol-0000", "name": "postgres-volume"},
        }
        self.environment_id, self.project_id = environment_id, "prj-0000"
        self.services: dict[str, dict[str, Any]] = {
            service_id: {"serviceName": "Postgres", "url": databases.url(database)}
        }
        self.backups = {
            f"bkp-{i:04d}": (at, databases.snapshots[at])
            for i, at in enumerate(sorted(databases.snapshots), start=1)
        }
        self.schedules = [
            {
                "id": "sch-daily",
                "kind": "DAILY",
                "cron": "0 3 * * *",
                "name": "Daily",
                "retentionSeconds": 6 * 86_400,
                "createdAt": _stamp(datetime.now(UTC) - timedelta(days=30)),
            }
        ]
        self.workflows: dict[str, PendingOperation] = {}
        self._ids = itertools.count(1)
        self.route("POST", r"/?", self._graphql)

    def authorized(self, headers: Any) -> bool:
        return True  # Railway answers a bad token with a GraphQL error (see _graphql)

    def _token_ok(self, headers: dict[str, str]) -> bool:
        name = _HEADERS.get(self.token_kind)
        if name is None:
            return headers.get("authorization") == f"Bearer {self.token}"
        return headers.get(name) == self.token

    def _graphql(self, request: Request) -> Answer:
        if not self._token_ok(request.headers):
            return _errors("Not Authorized")
        body = request.body if isinstance(request.body, dict) else {}
        match = _ROOT.match(str(body.get("query", "")))
        if match is None:
            return Answer(400, {"errors": [{"message": "Syntax Error: no operation"}]})
        kind, field, arglist = match.group(1), match.group(2), match.group(3) or ""
        args = set(re.findall(r"(\w+)\s*:", arglist))
        problem = self.graphql.problem(kind, field, args)
        if problem is not None:
            return _errors(problem)
        handler = self._handlers().get(field)
        if handler is None:
            return _errors(f"the stand-in does not serve {field}")
        variables = body.get("variables") or {}
        result = handler(variables)
        return result if isinstance(result, Answer) else Answer(200, {"data": {field: result}})

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "volumeInstance": self._volume_instance,
            "environment": self._environment,
            "volumeInstanceBackupList": lambda v: [
                {
                    "id": bid,
                    "name": f"backup {at:%Y-%m-%d %H:%M}",
                    "createdAt": _stamp(at),
                    "expiresAt": _stamp(at + timedelta(days=6)),
                    "usedMB": 12,
                    "referencedMB": 12,
                    "scheduleId": "sch-daily",
                }
                for bid, (at, _) in self.backups.items()
            ],
            "volumeInstanceBackupScheduleList": lambda v: self.schedules,
            "volumeInstanceBackupRestore": self._backup_restore,
            "volumeInstancePITRRestore": self._pitr_restore,
            "workflowStatus": self._workflow_status,
            "variables": self._variables,
        }

    def _volume_instance(self, variables: dict[str, Any]) -> Any:
        if variables.get("id") != self.volume["id"]:
            return _errors("VolumeInstance not found")
        return self.volume

    def _environment(self, variables: dict[str, Any]) -> Any:
        if variables.get("id") != self.environment_id:
            return _errors("Environment not found")
        edge = {"node": {"id": self.volume["id"], "serviceId": self.volume["serviceId"]}}
        return {
            "projectId": self.project_id,
            "volumeInstances": {
                "edges": [edge],
                "pageInfo": {"hasNextPage": False, "endCursor": None},
            },
            "serviceInstances": {
                "edges": [
                    {"node": {"serviceId": sid, "serviceName": s["serviceName"]}}
                    for sid, s in self.services.items()
                    if s.get("ready", True)
                ]
            },
        }

    def _workflow(self, work: Callable[[], None]) -> dict[str, str]:
        fail, self.fail_next_restore = self.fail_next_restore, False
        workflow_id = str(uuid.uuid4())
        self.workflows[workflow_id] = PendingOperation(self.polls_to_finish, work, fail=fail)
        return {"workflowId": workflow_id}

    def _backup_restore(self, variables: dict[str, Any]) -> Any:
        backup = self.backups.get(variables.get("volumeInstanceBackupId", ""))
        if variables.get("volumeInstanceId") != self.volume["id"] or backup is None:
            return _errors("Backup not found")
        template = backup[1]

        def work() -> None:
            self.databases.replace(self.database, template)
            self.volume["state"] = "READY"

        self.volume["state"] = "RESTORING"
        return self._workflow(work)

    def _pitr_restore(self, variables: dict[str, Any]) -> Any:
        if variables.get("volumeInstanceId") != self.volume["id"]:
            return _errors("VolumeInstance not found")
        at = datetime.fromisoformat(str(variables["targetTimestamp"]).replace("Z", "+00:00"))
        if at > datetime.now(UTC) or not any(m <= at for m in self.databases.snapshots):
            return _errors("targetTimestamp is outside the recovery window")
        service_id = f"svc-restored-{next(self._ids):04d}"
        db, template = self.databases.new_name(service_id), self.databases.template_at(at)
        service = {
            "serviceName": variables.get("newServiceName") or "Postgres-PITR",
            "url": self.databases.url(db),
            "ready": False,
        }
        self.services[service_id] = service

        def work() -> None:
            self.databases.copy(template, db)
            service["ready"] = True

        return self._workflow(work)

    def _workflow_status(self, variables: dict[str, Any]) -> Any:
        pending = self.workflows.get(variables.get("workflowId", ""))
        if pending is None:
            return {"status": "NotFound", "error": None}
        return {"status": _STATUS[pending.poll()], "error": pending.error}

    def _variables(self, variables: dict[str, Any]) -> Any:
        service = self.services.get(variables.get("serviceId", ""))
        if service is None or variables.get("environmentId") != self.environment_id:
            return _errors("Service not found")
        return {
            "DATABASE_PUBLIC_URL": service["url"],
            "PGDATABASE": service["url"].rsplit("/", 1)[-1],
        }
