"""Retention: which verified backups to delete, and deleting exactly those.

`plan_retention` is pure: from the catalogued verified backups, the configured databases
and the retention settings it decides, for every backup, *delete* or *keep* with a plain
reason. The rules, in order, for a backup older than its database's `retention_days`
(measured from `started_at`):

1. the newest verified backup of a database is always kept, whatever its age;
2. a backup an open restore or drill reads is kept;
3. a backup labelled with one of `keep_labels` is kept until it is `keep_labeled_days` old;
4. otherwise it is deleted.

Only `succeeded` rows are considered (running and failed ones are never touched), backups
of databases that are not configured are left alone, and so are rows written to another
kind of store than the current one. `RetentionService.apply` deletes only the catalogued
keys of each planned backup (the manifest, then the artifact; never a prefix listing), and
only after both deletions succeeded marks the row `deleted` (a guarded update). A store
error leaves the row as it was and the run goes on with the next backup.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backupbot.commands.command_spec import resolve_database
from backupbot.errors import BackupbotError
from backupbot.settings import DatabaseSettings, RetentionSettings, Settings
from backupbot.storage.artifacts import ArtifactStore
from backupbot.storage.catalog import SUCCEEDED, BackupCatalog, BackupRecord
from backupbot.storage.incidents import IncidentLog

log = logging.getLogger(__name__)

DELETE, KEEP = "delete", "keep"
# Why a backup is kept or deleted (`Decision.rule`).
WITHIN_POLICY = "within_policy"
NEWEST = "newest"
IN_USE = "in_use"
LABEL = "label"
EXPIRED = "expired"
UNCONFIGURED = "unconfigured"
OTHER_STORE = "other_store"

RUN_ACTION = "retention.run"
DELETED_ACTION = "retention.deleted"
FAILED_ACTION = "retention.delete_failed"


@dataclass(frozen=True)
class DatabasePolicy:
    name: str
    retention_days: int


@dataclass(frozen=True)
class Decision:
    """What retention does with one verified backup, and why."""

    backup: BackupRecord
    action: str  # delete | keep
    rule: str  # one of the rule constants above
    reason: str  # plain words: "older than 30 days", "newest verified backup of app"
    age: timedelta

    @property
    def delete(self) -> bool:
        return self.action == DELETE

    @property
    def age_days(self) -> int:
        return self.age.days

    def as_json(self) -> dict[str, Any]:
        b = self.backup
        return {
            "id": b.id,
            "database": b.database,
            "action": self.action,
            "rule": self.rule,
            "reason": self.reason,
            "started_at": b.started_at.isoformat(),
            "age_days": round(self.age.total_seconds() / 86400, 2),
            "label": b.label,
            "stored_size": b.stored_size,
            "location": b.location,
        }


@dataclass(frozen=True)
class RetentionPlan:
    """Every considered backup's decision. `policies` are the configured databases in
    scope (configuration order); `decisions` are newest first within each database."""

    now: datetime
    policies: tuple[DatabasePolicy, ...]
    keep_labels: tuple[str, ...]
    keep_labeled_days: int
    decisions: tuple[Decision, ...]

    @property
    def to_delete(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.delete)

    @property
    def kept(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if not d.delete)

    @property
    def bytes_to_free(self) -> int:
        return sum(d.backup.stored_size or 0 for d in self.to_delete)

    def for_database(self, name: str) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.backup.database == name)

    @property
    def unconfigured(self) -> dict[str, int]:
        """Databases with verified backups that are not configured: how many each."""
        counts: dict[str, int] = {}
        for d in self.decisions:
            if d.rule == UNCONFIGURED:
                counts[d.backup.database] = counts.get(d.backup.database, 0) + 1
        return counts

    def as_json(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "databases": [
                {"name": p.name, "retention_days": p.retention_days} for p in self.policies
            ],
            "keep_labels": list(self.keep_labels),
            "keep_labeled_days": self.keep_labeled_days,
            "would_delete": len(self.to_delete),
            "would_free_bytes": self.bytes_to_free,
            "unconfigured": self.unconfigured,
            "decisions": [d.as_json() for d in self.decisions],
        }


@dataclass(frozen=True)
class FailedDeletion:
    decision: Decision
    error: str


@dataclass(frozen=True)
class RetentionReport:
    """What one retention run did."""

    at: datetime
    actor: str
    plan: RetentionPlan
    deleted: tuple[Decision, ...]
    failed: tuple[FailedDeletion, ...]
    skipped: tuple[Decision, ...]  # another run marked them deleted first

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def kept(self) -> int:
        return len(self.plan.kept)

    @property
    def freed_bytes(self) -> int:
        return sum(d.backup.stored_size or 0 for d in self.deleted)

    @property
    def did_something(self) -> bool:
        return bool(self.deleted or self.failed)

    def as_json(self) -> dict[str, Any]:
        """A JSON-safe summary; `ok` is False when a deletion failed."""
        return {
            "ok": self.ok,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "deleted": [d.as_json() for d in self.deleted],
            "failed": [{**f.decision.as_json(), "error": f.error} for f in self.failed],
            "skipped": [d.backup.id for d in self.skipped],
            "kept": self.kept,
            "freed_bytes": self.freed_bytes,
            "unconfigured": self.plan.unconfigured,
        }


def keeps_label(label: str | None, keep_labels: Iterable[str]) -> bool:
    """Labels match without regard to case or surrounding spaces (keeping more is safe)."""
    if not label:
        return False
    return label.strip().casefold() in {k.strip().casefold() for k in keep_labels}


def plan_retention(
    backups: Iterable[BackupRecord],
    databases: Sequence[DatabaseSettings | DatabasePolicy],
    settings: RetentionSettings,
    now: datetime,
    *,
    in_use: frozenset[str] = frozenset(),
    store_kind: str | None = None,
) -> RetentionPlan:
    """Decide delete/keep for every verified backup in `backups` (other rows are ignored).

    `databases` are the configured databases in scope; backups of any other database are
    kept as unconfigured. `in_use`: ids an open restore or drill reads. `store_kind`: rows
    written to another kind of store are kept (None: do not check).
    """
    policies = tuple(DatabasePolicy(d.name, d.retention_days) for d in databases)
    by_name = {p.name: p for p in policies}
    verified = [b for b in backups if b.status == SUCCEEDED]
    newest: dict[str, BackupRecord] = {}
    for b in verified:
        current = newest.get(b.database)
        if current is None or (b.started_at, b.id) > (current.started_at, current.id):
            newest[b.database] = b
    label_limit = timedelta(days=settings.keep_labeled_days)

    def decide(b: BackupRecord) -> Decision:
        age = now - b.started_at
        policy = by_name.get(b.database)
        if policy is None:
            return Decision(
                b, KEEP, UNCONFIGURED, f"{b.database} is not configured; left alone", age
            )
        days = policy.retention_days
        if age <= timedelta(days=days):
            return Decision(b, KEEP, WITHIN_POLICY, f"within {days} days", age)
        if newest[b.database].id == b.id:
            return Decision(b, KEEP, NEWEST, f"newest verified backup of {b.database}", age)
        if b.id in in_use:
            return Decision(b, KEEP, IN_USE, "an open restore or drill uses it", age)
        if store_kind is not None and b.store != store_kind:
            return Decision(
                b,
                KEEP,
                OTHER_STORE,
                f"in the {b.store} store, not the configured {store_kind} store; left alone",
                age,
            )
        if keeps_label(b.label, settings.keep_labels):
            if age <= label_limit:
                reason = f"label {b.label} kept {settings.keep_labeled_days} days"
                return Decision(b, KEEP, LABEL, reason, age)
            reason = (
                f"older than {days} days (label {b.label} is kept "
                f"{settings.keep_labeled_days} days)"
            )
            return Decision(b, DELETE, EXPIRED, reason, age)
        return Decision(b, DELETE, EXPIRED, f"older than {days} days", age)

    order = {p.name: i for i, p in enumerate(policies)}
    ranked = sorted(
        verified,
        key=lambda b: (order.get(b.database, len(order)), b.database, b.started_at, b.id),
    )
    # newest first within each database
    grouped: dict[str, list[BackupRecord]] = {}
    for b in ranked:
        grouped.setdefault(b.database, []).insert(0, b)
    decisions = tuple(decide(b) for rows in grouped.values() for b in rows)
    return RetentionPlan(
        now=now,
        policies=policies,
        keep_labels=tuple(settings.keep_labels),
        keep_labeled_days=settings.keep_labeled_days,
        decisions=decisions,
    )


class RetentionService:
    """The dry run (`plan`) and the run (`apply`) over the bot's catalog and store."""

    def __init__(
        self,
        *,
        settings: Settings,
        catalog: BackupCatalog,
        store: ArtifactStore,
        incidents: IncidentLog,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._store = store
        self._incidents = incidents

    def plan(self, database: str | None, now: datetime) -> RetentionPlan:
        """What a run at `now` would delete and keep, and why; `database` None: all
        configured databases, plus a note about backups of unconfigured ones."""
        if database is None:
            databases = list(self._settings.databases)
        else:
            name = resolve_database(database, self._settings.database_names, "retention")
            databases = [d for d in self._settings.databases if d.name == name]
        return plan_retention(
            self._catalog.verified(database),
            databases,
            self._settings.retention,
            now,
            in_use=self._catalog.in_use_by_restores(),
            store_kind=self._store.kind,
        )

    def apply(
        self, now: datetime, actor: str = "scheduler", database: str | None = None
    ) -> RetentionReport:
        """Delete what the plan at `now` says, one backup at a time, and record it all.

        Each backup is first claimed (`succeeded` -> `deleting`, only while no restore or
        drill reads it), then its manifest and artifact are removed by their catalogued
        keys, then the row is marked `deleted` together with its `retention.deleted`
        record. A deletion that fails gives the claim back and writes
        `retention.delete_failed`; the run goes on. A claim a stopped run left is finished
        by the next run. One `retention.run` record per run.
        """
        self._finish_interrupted(now, actor)
        plan = self.plan(database, now)
        deleted: list[Decision] = []
        failed: list[FailedDeletion] = []
        skipped: list[Decision] = []
        for decision in sorted(plan.to_delete, key=lambda d: d.backup.started_at):
            if not self._catalog.claim_for_deletion(decision.backup.id):
                skipped.append(decision)  # a restore reads it now, or another run has it
                continue
            error = self._delete_objects(decision.backup)
            with self._incidents.atomic():
                if error is not None:
                    # Still restorable (the manifest goes first, the catalog holds a copy).
                    self._catalog.release_deletion(decision.backup.id)
                    self._record(decision, now, actor, FAILED_ACTION, "failed", error=error)
                    failed.append(FailedDeletion(decision, error))
                elif self._catalog.mark_deleted(decision.backup.id, now):
                    self._record(decision, now, actor, DELETED_ACTION, "ok")
                    deleted.append(decision)
        report = RetentionReport(now, actor, plan, tuple(deleted), tuple(failed), tuple(skipped))
        self._record_run(report, database)
        return report

    def _finish_interrupted(self, now: datetime, actor: str) -> None:
        """Complete deletions a stopped run claimed: their objects may be half gone, so
        they are deleted again (deleting nothing is no error) and marked deleted."""
        for backup in self._catalog.deleting():
            decision = Decision(
                backup,
                DELETE,
                EXPIRED,
                "claimed by a retention run that stopped before it finished",
                now - backup.started_at,
            )
            if self._delete_objects(backup) is not None:
                continue  # left claimed; the next run tries again
            with self._incidents.atomic():
                if self._catalog.mark_deleted(backup.id, now):
                    self._record(decision, now, actor, DELETED_ACTION, "ok")

    def _delete_objects(self, backup: BackupRecord) -> str | None:
        """Delete the backup's catalogued manifest, then its artifact; the error, or None.

        The manifest goes first: if the artifact cannot be deleted, the row stays a
        restorable backup (the catalog holds the manifest) and the next run tries again.
        """
        for key in (backup.manifest_key, backup.artifact_key):
            if not key:
                continue
            try:
                self._store.delete(key)
            except BackupbotError as exc:
                log.warning("retention could not delete %s: %s", key, exc)
                return str(exc)
            except Exception:
                log.exception("retention crashed deleting %s", key)
                return "An internal error stopped the deletion; the bot's log has the details."
        return None

    def _record(
        self,
        decision: Decision,
        now: datetime,
        actor: str,
        action: str,
        outcome: str,
        error: str | None = None,
    ) -> None:
        b = decision.backup
        details: dict[str, Any] = {
            "reason": decision.reason,
            "age_days": decision.age_days,
            "started_at": b.started_at.isoformat(),
            "label": b.label,
            "stored_size": b.stored_size,
            "location": b.location,
        }
        if error is not None:
            details["error"] = error
        self._incidents.record(
            at=now,
            actor=actor,
            action=action,
            outcome=outcome,
            database=b.database,
            backup_id=b.id,
            details=details,
        )

    def _record_run(self, report: RetentionReport, database: str | None) -> None:
        details: dict[str, Any] = {
            "deleted": len(report.deleted),
            "failed": len(report.failed),
            "kept": report.kept,
            "freed_bytes": report.freed_bytes,
            "databases": [p.name for p in report.plan.policies],
        }
        if report.plan.unconfigured:
            details["unconfigured"] = report.plan.unconfigured
        if report.failed:
            ids = ", ".join(f.decision.backup.id for f in report.failed)
            details["error"] = (
                f"{len(report.failed)} deletion(s) failed ({ids}): {report.failed[0].error}"
            )
        self._incidents.record(
            at=report.at,
            actor=report.actor,
            action=RUN_ACTION,
            outcome="ok" if report.ok else "failed",
            database=database,
            details=details,
        )
        log.info(
            "retention run: deleted %d, failed %d, kept %d",
            len(report.deleted),
            len(report.failed),
            report.kept,
        )
