"""Neon: restores from the branch's history (point in time or LSN) into a new branch,
or in place keeping the old state as a branch; snapshots as recovery points; every
change is a set of operations polled until finished or failed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from backupbot.errors import ProviderError
from backupbot.settings.providers import NeonSettings
from backupbot.storage.providers.common import host_of, iso, parse_time, url_parts
from backupbot.storage.providers.contract import (
    Into,
    ProviderHealth,
    ProviderOperation,
    RecoveryPoint,
    RecoveryWindow,
    RestorePlan,
)
from backupbot.storage.providers.http import ProviderHttp

_FAILED = {"failed", "error", "cancelling", "cancelled"}
_DONE = {"finished", "skipped"}


class NeonAdapter:
    provider = "neon"

    def __init__(self, section: NeonSettings, database_url: str, http: ProviderHttp) -> None:
        self.section = section
        self._database_url = database_url
        self.http = http
        self._project = f"/projects/{section.project_id}"

    def _branch(self, branch_id: str | None = None) -> dict[str, Any]:
        answer = self.http.request(
            "GET", f"{self._project}/branches/{branch_id or self.section.branch_id}"
        )
        branch: dict[str, Any] = answer["branch"]
        return branch

    def recovery_window(self) -> RecoveryWindow:
        project = self.http.request("GET", self._project)["project"]
        seconds = int(project.get("history_retention_seconds") or 0)
        if seconds <= 0:
            return RecoveryWindow(
                enabled=False,
                reason="the project keeps no history (history_retention_seconds is 0)",
            )
        now = datetime.now(UTC)
        created = parse_time(self._branch().get("created_at")) or now
        return RecoveryWindow(
            enabled=True,
            earliest=max(now - timedelta(seconds=seconds), created),
            latest=now,
            retention_days=seconds / 86_400,
            notes=(
                "restores go to a new branch, or in place keeping the current state as a branch",
            ),
        )

    def recovery_points(self) -> list[RecoveryPoint]:
        answer = self.http.request("GET", f"{self._project}/snapshots")
        points = [
            RecoveryPoint(
                id=s["id"],
                created_at=parse_time(s.get("timestamp") or s["created_at"]) or datetime.now(UTC),
                name=s.get("name"),
                expires_at=parse_time(s.get("expires_at")),
            )
            for s in answer.get("snapshots", [])
            if s.get("source_branch_id") in (None, self.section.branch_id)
        ]
        return sorted(points, key=lambda p: p.created_at)

    def plan(self, into: Into) -> RestorePlan:
        if into == "new":
            state = "a new branch is created at the point; the current branch is untouched"
        else:
            state = (
                "the branch is restored in place; its current state is kept as a branch "
                "(the safety copy)"
            )
        return RestorePlan(
            into=into,
            current_state=state,
            needs_safety_dump=False,
            estimated_minutes=2,
            supported_into=("new", "in_place"),
        )

    def restore(
        self,
        *,
        to: datetime | None = None,
        snapshot: str | None = None,
        into: Into = "new",
        name: str | None = None,
        lsn: str | None = None,
    ) -> ProviderOperation:
        if snapshot is not None:
            if into != "new":
                raise ProviderError(
                    "Neon restores a snapshot into a new branch; restore it with into new"
                )
            body: dict[str, Any] = {"finalize_restore": False}
            if name:
                body["name"] = name
            answer = self.http.request(
                "POST", f"{self._project}/snapshots/{snapshot}/restore", json=body
            )
            return self._started(answer["branch"], answer.get("operations", []))
        if (to is None) == (lsn is None):
            raise ProviderError("give a time or an LSN to restore Neon to (one of them)")
        point = {"parent_lsn": lsn} if lsn else {"parent_timestamp": iso(to or datetime.now(UTC))}
        if into == "new":
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
            branch = {
                "parent_id": self.section.branch_id,
                "name": name or f"restore-{stamp}",
                **point,
            }
            answer = self.http.request(
                "POST",
                f"{self._project}/branches",
                json={"branch": branch, "endpoints": [{"type": "read_write"}]},
            )
            return self._started(answer["branch"], answer.get("operations", []))
        keep = name or f"{self._branch()['name']}-before-restore-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        source = {"source_" + k.removeprefix("parent_"): v for k, v in point.items()}
        answer = self.http.request(
            "POST",
            f"{self._project}/branches/{self.section.branch_id}/restore",
            json={
                "source_branch_id": self.section.branch_id,
                "preserve_under_name": keep,
                **source,
            },
        )
        return self._started(answer["branch"], answer.get("operations", []), keep)

    def _started(
        self, branch: dict[str, Any], operations: list[dict[str, Any]], kept: str = ""
    ) -> ProviderOperation:
        ids = ",".join(op["id"] for op in operations)
        return self.operation_status(f"{branch['id']}|{ids}|{kept}")

    def operation_status(self, operation_id: str) -> ProviderOperation:
        branch_id, ids, kept = [*operation_id.split("|"), "", ""][:3]
        statuses = []
        for op_id in filter(None, ids.split(",")):
            op = self.http.request("GET", f"{self._project}/operations/{op_id}")["operation"]
            statuses.append((op.get("status", "running"), op.get("error")))
        failed = [error or status for status, error in statuses if status in _FAILED]
        kept_note = f"the previous state is kept as branch {kept}" if kept else None
        name = self._branch(branch_id).get("name", branch_id)
        if failed:
            return ProviderOperation(
                operation_id, "failed", f"Neon operation failed: {failed[0]}", name
            )
        if any(status not in _DONE for status, _ in statuses):
            return ProviderOperation(operation_id, "running", kept_note, name)
        user, dbname = url_parts(self._database_url)
        uri = self.http.request(
            "GET",
            f"{self._project}/connection_uri",
            params={"branch_id": branch_id, "database_name": dbname, "role_name": user},
        )["uri"]
        return ProviderOperation(
            operation_id,
            "succeeded",
            kept_note,
            result_name=f"{name} ({branch_id})",
            result_host=host_of(uri),
            connection_url=uri,
        )

    def health(self) -> ProviderHealth:
        project = self.http.request("GET", self._project)["project"]
        branch = self._branch()
        days = int(project.get("history_retention_seconds") or 0) / 86_400
        return ProviderHealth(
            reachable=True,
            detail=(
                f"project {project.get('name', project['id'])}, branch {branch.get('name')}, "
                f"history kept {days:g} days"
            ),
            automated_backups=days > 0,
        )
