"""Retention: deleting exactly the verified backups the plan (`retention_plan.py`) says.

`RetentionService.plan` is the dry run; `RetentionService.apply` deletes only the
catalogued keys of each planned backup (the manifest, then the artifact; never a prefix
listing), and only after both deletions succeeded marks the row `deleted` (a guarded
update). A store error leaves the row as it was and the run goes on with the next backup.
Backups under an S3 Object Lock that has not expired are kept by the plan; a deletion S3
refuses because of a lock is noted (`retention.delete_locked`), not a failure.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from backupbot.commands.command_spec import resolve_database
from backupbot.commands.retention_plan import (
    DELETE,
    EXPIRED,
    KEEP,
    LOCKED,
    Decision,
    FailedDeletion,
    RetentionPlan,
    RetentionReport,
    plan_retention,
)
from backupbot.errors import BackupbotError
from backupbot.settings import Settings
from backupbot.storage.artifacts import ArtifactStore, ObjectLock, ObjectLocked
from backupbot.storage.catalog import BackupCatalog, BackupRecord
from backupbot.storage.incidents import IncidentLog

log = logging.getLogger(__name__)

RUN_ACTION = "retention.run"
DELETED_ACTION = "retention.deleted"
FAILED_ACTION = "retention.delete_failed"
LOCKED_ACTION = "retention.delete_locked"


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
            lock_of=self._lock_of,
        )

    def _lock_of(self, backup: BackupRecord) -> ObjectLock | None:
        """The later-expiring Object Lock on the backup's manifest and artifact, if any.
        A store that cannot tell says nothing: the deletion then decides."""
        locks: list[ObjectLock] = []
        for key in (backup.manifest_key, backup.artifact_key):
            if not key:
                continue
            try:
                lock = self._store.lock(key)
            except BackupbotError as exc:
                log.warning("retention could not read the lock of %s: %s", key, exc)
                continue
            if lock is not None:
                locks.append(lock)
        return max(locks, key=lambda lock: lock.until, default=None)

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
        refused: list[Decision] = []
        for decision in sorted(plan.to_delete, key=lambda d: d.backup.started_at):
            if not self._catalog.claim_for_deletion(decision.backup.id):
                skipped.append(decision)  # a restore reads it now, or another run has it
                continue
            error = self._delete_objects(decision.backup)
            with self._incidents.atomic():
                if isinstance(error, ObjectLocked):
                    # Nothing was deleted (the manifest is locked at least as long).
                    self._catalog.release_deletion(decision.backup.id)
                    kept = Decision(decision.backup, KEEP, LOCKED, str(error.phrase), decision.age)
                    self._record(kept, now, actor, LOCKED_ACTION, "skipped")
                    refused.append(kept)
                elif error is not None:
                    # Still restorable (the manifest goes first, the catalog holds a copy).
                    self._catalog.release_deletion(decision.backup.id)
                    self._record(decision, now, actor, FAILED_ACTION, "failed", error=error)
                    failed.append(FailedDeletion(decision, error))
                elif self._catalog.mark_deleted(decision.backup.id, now):
                    self._record(decision, now, actor, DELETED_ACTION, "ok")
                    deleted.append(decision)
        report = RetentionReport(
            now, actor, plan, tuple(deleted), tuple(failed), tuple(skipped), tuple(refused)
        )
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
            error = self._delete_objects(backup)
            if isinstance(error, ObjectLocked):
                self._catalog.release_deletion(backup.id)  # kept until its lock expires
                continue
            if error is not None:
                continue  # left claimed; the next run tries again
            with self._incidents.atomic():
                if self._catalog.mark_deleted(backup.id, now):
                    self._record(decision, now, actor, DELETED_ACTION, "ok")

    def _delete_objects(self, backup: BackupRecord) -> str | ObjectLocked | None:
        """Delete the backup's catalogued manifest, then its artifact; the error (the
        store's refusal when an object is locked), or None.

        The manifest goes first: if the artifact cannot be deleted, the row stays a
        restorable backup (the catalog holds the manifest) and the next run tries again.
        """
        for key in (backup.manifest_key, backup.artifact_key):
            if not key:
                continue
            try:
                self._store.delete(key)
            except ObjectLocked as exc:
                log.info("retention: %s", exc)
                return exc
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
            "locked": len(report.locked),
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
