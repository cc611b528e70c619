"""Railway (GraphQL): the volume's backups and backup schedules; a restore is a volume
backup restored in place (volumeInstanceBackupRestore) or a point in time restored into
a NEW Postgres service (volumeInstancePITRRestore), each a workflow polled with
workflowStatus. GraphQL errors arrive as 200 with `errors`: they are ProviderErrors."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from backupbot.errors import ProviderError
from backupbot.settings.providers import RailwaySettings
from backupbot.storage.providers.common import host_of, iso, parse_time, utc
from backupbot.storage.providers.contract import (
    Into,
    ProviderHealth,
    ProviderOperation,
    RecoveryPoint,
    RecoveryWindow,
    RestorePlan,
)
from backupbot.storage.providers.http import ProviderHttp

log = logging.getLogger(__name__)

_VOLUME = (
    "query VolumeInstance($id: String!) { volumeInstance(id: $id) { id serviceId "
    "environmentId state mountPath volume { id name } } }"
)
_ENV_VOLUMES = (
    "query EnvironmentVolumes($id: String!, $after: String) { environment(id: $id) { "
    "volumeInstances(first: 50, after: $after) { edges { node { id serviceId } } "
    "pageInfo { hasNextPage endCursor } } } }"
)
_BACKUPS = (
    "query Backups($volumeInstanceId: String!) { volumeInstanceBackupList(volumeInstanceId: "
    "$volumeInstanceId) { id name createdAt expiresAt usedMB referencedMB scheduleId } }"
)
_SCHEDULES = (
    "query Schedules($volumeInstanceId: String!) { volumeInstanceBackupScheduleList("
    "volumeInstanceId: $volumeInstanceId) { id kind cron name retentionSeconds createdAt } }"
)
_BACKUP_RESTORE = (
    "mutation BackupRestore($volumeInstanceId: String!, $volumeInstanceBackupId: String!) { "
    "volumeInstanceBackupRestore(volumeInstanceId: $volumeInstanceId, volumeInstanceBackupId: "
    "$volumeInstanceBackupId) { workflowId } }"
)
_PITR_RESTORE = (
    "mutation PITRRestore($volumeInstanceId: String!, $targetTimestamp: DateTime!, "
    "$newServiceName: String) { volumeInstancePITRRestore(volumeInstanceId: $volumeInstanceId, "
    "targetTimestamp: $targetTimestamp, newServiceName: $newServiceName) { workflowId } }"
)
_WORKFLOW = (
    "query Workflow($workflowId: String!) { workflowStatus(workflowId: $workflowId) "
    "{ status error } }"
)
_SERVICES = (
    "query Services($id: String!) { environment(id: $id) { projectId serviceInstances(first: 100) "
    "{ edges { node { serviceId serviceName } } } } }"
)
_VARIABLES = (
    "query Variables($environmentId: String!, $projectId: String!, $serviceId: String!) { "
    "variables(environmentId: $environmentId, projectId: $projectId, serviceId: $serviceId) }"
)
_HEADERS = {"project": "Project-Access-Token", "team": "Team-Access-Token"}


def railway_headers(section: RailwaySettings) -> dict[str, str]:
    """The credential's header by token kind (account tokens are Bearer)."""
    key = section.api_key.get_secret_value()
    name = _HEADERS.get(section.token_kind)
    return {name: key} if name else {"Authorization": f"Bearer {key}"}


class RailwayAdapter:
    provider = "railway"

    def __init__(self, section: RailwaySettings, database_url: str, http: ProviderHttp) -> None:
        self.section = section
        self._database_url = database_url
        self.http = http
        self._volume_id = section.volume_instance_id

    def _gql(self, name: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = {"query": query, "variables": variables, "operationName": name}
        # the absolute URL: a relative "" would gain a trailing slash from httpx
        answer = self.http.request("POST", self.section.api_url, json=body) or {}
        errors = answer.get("errors")
        if errors:
            first = errors[0] if isinstance(errors[0], dict) else {}
            message = " ".join(str(first.get("message", "no detail")).split())[:300]
            log.warning("railway API %s answered an error: %s", name, message)
            raise ProviderError(
                f"railway's API refused {name}: {message}",
                permanent="rate limit" not in message.lower(),
            )
        data: dict[str, Any] = answer.get("data") or {}
        return data

    def volume_instance_id(self) -> str:
        """The configured volume instance, or the one of service_id in environment_id."""
        if self._volume_id is None:
            after: str | None = None
            while self._volume_id is None:
                env = self._gql(
                    "EnvironmentVolumes",
                    _ENV_VOLUMES,
                    {"id": self.section.environment_id, "after": after},
                )
                volumes = env["environment"]["volumeInstances"]
                found = [
                    e["node"]["id"]
                    for e in volumes["edges"]
                    if e["node"].get("serviceId") == self.section.service_id
                ]
                if found:
                    self._volume_id = found[0]
                elif not volumes["pageInfo"]["hasNextPage"]:
                    raise ProviderError(
                        f"Railway service {self.section.service_id} has no volume in environment "
                        f"{self.section.environment_id}; check service_id and environment_id"
                    )
                after = volumes["pageInfo"]["endCursor"]
        return self._volume_id

    def _schedules(self) -> list[dict[str, Any]]:
        data = self._gql("Schedules", _SCHEDULES, {"volumeInstanceId": self.volume_instance_id()})
        return list(data["volumeInstanceBackupScheduleList"])

    def recovery_window(self) -> RecoveryWindow:
        kept = [s.get("retentionSeconds") or 0 for s in self._schedules()]
        days = max(kept) / 86_400 if kept else None
        return RecoveryWindow(
            enabled=True,
            latest=datetime.now(UTC),
            retention_days=days,
            notes=(
                "Railway's API does not say how far back point-in-time recovery reaches",
                "a point-in-time restore creates a new Postgres service; a volume backup "
                "restores in place",
            ),
        )

    def recovery_points(self) -> list[RecoveryPoint]:
        data = self._gql("Backups", _BACKUPS, {"volumeInstanceId": self.volume_instance_id()})
        points = [
            RecoveryPoint(
                id=b["id"],
                created_at=parse_time(b["createdAt"]) or datetime.now(UTC),
                name=b.get("name"),
                expires_at=parse_time(b.get("expiresAt")),
                size_bytes=int(b["usedMB"]) * 1_000_000 if b.get("usedMB") is not None else None,
            )
            for b in data["volumeInstanceBackupList"]
        ]
        return sorted(points, key=lambda p: p.created_at)

    def plan(self, into: Into) -> RestorePlan:
        if into == "new":
            state = "a new Postgres service is created at the point; the current one is untouched"
        else:
            state = (
                "the volume is overwritten by the backup; the bot takes its own safety dump first"
            )
        return RestorePlan(
            into=into,
            current_state=state,
            needs_safety_dump=into == "in_place",
            estimated_minutes=10,
            supported_into=("new", "in_place"),
        )

    def restore(
        self,
        *,
        to: datetime | None = None,
        snapshot: str | None = None,
        into: Into = "new",
        name: str | None = None,
    ) -> ProviderOperation:
        volume = self.volume_instance_id()
        if snapshot is not None:
            if into != "in_place":
                raise ProviderError(
                    "Railway restores a volume backup in place only; use --in-place"
                )
            data = self._gql(
                "BackupRestore",
                _BACKUP_RESTORE,
                {"volumeInstanceId": volume, "volumeInstanceBackupId": snapshot},
            )
            return self.operation_status(
                f"backup:{data['volumeInstanceBackupRestore']['workflowId']}"
            )
        if to is None or into != "new":
            raise ProviderError(
                "Railway restores a point in time into a new service only; give a time "
                "without --in-place, or a volume backup (--snapshot) in place"
            )
        service = name or f"postgres-pitr-{utc(to):%Y%m%d-%H%M}"
        data = self._gql(
            "PITRRestore",
            _PITR_RESTORE,
            {"volumeInstanceId": volume, "targetTimestamp": iso(to), "newServiceName": service},
        )
        return self.operation_status(
            f"pitr:{data['volumeInstancePITRRestore']['workflowId']}:{service}"
        )

    def operation_status(self, operation_id: str) -> ProviderOperation:
        kind, workflow, service = [*operation_id.split(":", 2), ""][:3]
        result = self._gql("Workflow", _WORKFLOW, {"workflowId": workflow})["workflowStatus"]
        status, error = result.get("status"), result.get("error")
        name = f"service {service}" if kind == "pitr" else "the volume (in place)"
        if status == "Running":
            return ProviderOperation(operation_id, "running", "workflow Running", name)
        if status != "Complete":
            detail = f"Railway workflow {status}" + (f": {error}" if error else "")
            return ProviderOperation(operation_id, "failed", detail, name)
        url = self._database_url if kind != "pitr" else self._service_url(service)
        return ProviderOperation(
            operation_id,
            "succeeded",
            "workflow Complete",
            name,
            host_of(url) if url else None,
            connection_url=url,
        )

    def _service_url(self, service_name: str) -> str | None:
        """The new service's DATABASE_PUBLIC_URL (or DATABASE_URL) from its variables."""
        env_id = self._gql("VolumeInstance", _VOLUME, {"id": self.volume_instance_id()})[
            "volumeInstance"
        ]["environmentId"]
        env = self._gql("Services", _SERVICES, {"id": env_id})["environment"]
        ids = [
            e["node"]["serviceId"]
            for e in env["serviceInstances"]["edges"]
            if e["node"]["serviceName"] == service_name
        ]
        if not ids:
            return None
        variables = self._gql(
            "Variables",
            _VARIABLES,
            {"environmentId": env_id, "projectId": env["projectId"], "serviceId": ids[0]},
        )["variables"]
        url = variables.get("DATABASE_PUBLIC_URL") or variables.get("DATABASE_URL")
        return str(url) if url else None

    def health(self) -> ProviderHealth:
        volume = self._gql("VolumeInstance", _VOLUME, {"id": self.volume_instance_id()})[
            "volumeInstance"
        ]
        schedules = self._schedules()
        points = self.recovery_points()
        kinds = ", ".join(sorted(s["kind"] for s in schedules)) or "none"
        return ProviderHealth(
            reachable=True,
            detail=(
                f"volume {volume['volume']['name']} {volume.get('state')}, "
                f"backup schedules: {kinds}"
            ),
            last_backup_at=points[-1].created_at if points else None,
            automated_backups=bool(schedules),
        )
