"""A restore request before it is recorded: its checked reason, the backup and target it
names, what the target holds, and the preview and approvals the request carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backupbot.commands.approval_stages import total_needed
from backupbot.commands.approvals import ApprovalPolicy, CachedApprovers
from backupbot.commands.migrations import ahead_of_backup
from backupbot.commands.restore_lookup import BackupLookup, choose_target, configured_as
from backupbot.commands.restore_model import RESTORE_USAGE, rto_minutes
from backupbot.commands.restore_targets import Targets
from backupbot.commands.schema_compare import recorded_schema
from backupbot.errors import UsageError
from backupbot.settings import DatabaseSettings, RestoreSettings
from backupbot.storage.catalog import BackupRecord
from backupbot.storage.pgadmin import TargetFacts, inspect_target
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.restores import DRILL, NewRestore, RestoreRecord, RestoreRequests

MAX_REASON = 500


def validate_reason(reason: str | None) -> str | None:
    """`reason` with its whitespace collapsed; refuses an empty or an overlong one."""
    if reason is None:
        return None
    reason = " ".join(reason.split())
    if not reason:
        raise UsageError('--reason needs some text, e.g. --reason "bad migration".', RESTORE_USAGE)
    if len(reason) > MAX_REASON:
        raise UsageError(f"Keep --reason under {MAX_REASON} characters.", RESTORE_USAGE)
    return reason


@dataclass(frozen=True)
class RestorePlan:
    """What a request would restore, and where to."""

    db: DatabaseSettings
    backup: BackupRecord
    mode: str
    target: ConnInfo
    facts: TargetFacts
    target_name: str | None = None  # a `targets:` entry; None: the source's own server


class RestorePlanner:
    """Turns a request's arguments into a `RestorePlan` and then a `NewRestore`."""

    def __init__(
        self,
        *,
        databases: dict[str, DatabaseSettings],
        lookup: BackupLookup,
        policy: ApprovalPolicy,
        approvers: CachedApprovers,
        settings: RestoreSettings,
        targets: Targets,
        restores: RestoreRequests,
    ) -> None:
        self._databases = databases
        self._targets = targets
        self._restores = restores
        self._lookup = lookup
        self._policy = policy
        self._approvers = approvers
        self._settings = settings

    def db(self, name: str) -> DatabaseSettings:
        db = self._databases.get(name)
        if db is None:
            raise UsageError(f"There is no configured database named {name!r}.", RESTORE_USAGE)
        return db

    def rto_minutes(self, database: str) -> int:
        return rto_minutes(self._databases, self._settings, database)

    def plan(
        self, database: str, ref: str | None, into: str | None, in_place: bool, now: datetime
    ) -> RestorePlan:
        """Resolve the database, backup and target, and inspect the target."""
        db = self.db(database)
        backup = self._lookup.resolve(database, ref)
        choice = choose_target(db, into, in_place, now, self._targets)
        target = self._targets.conn(db, choice.target_name, choice.dbname)
        return RestorePlan(
            db, backup, choice.mode, target, inspect_target(target), choice.target_name
        )

    def new_restore(
        self,
        plan: RestorePlan,
        requester: str,
        reason: str | None,
        now: datetime,
        *,
        break_glass: bool,
    ) -> NewRestore:
        """The request to record for `plan`, with the preview approvers see."""
        db, backup, target = plan.db, plan.backup, plan.target
        preview = self._preview(plan)
        # Break-glass restores made since reviews exist need one (older ones, whose
        # notices have no Reviewed button, are left out: `escalation_review.py`).
        preview["review_required"] = break_glass
        # The stages go with the request: all-of stages resolved to people now, and a
        # request nobody could approve is refused here (`Unapprovable`). Break-glass
        # restores need no approval.
        stages = (
            ()
            if break_glass
            else self._approvers.resolve(
                self._policy.stages_for(protected=db.protected, in_place=plan.mode == "in_place"),
                requester,
            )
        )
        return NewRestore(
            database=db.name,
            backup_id=backup.id,
            mode=plan.mode,
            target_db=target.dbname,
            target_where=target.where,
            requester=requester,
            reason=reason,
            required_approvals=total_needed(stages),
            expires_at=now + self._policy.timeout,
            preview=preview,
            break_glass=break_glass,
            policy=[s.as_json() for s in stages],
            target_name=plan.target_name,
        )

    def _preview(self, plan: RestorePlan) -> dict[str, Any]:
        """What the request message shows: the backup, source, target and RTO."""
        db, backup, target = plan.db, plan.backup, plan.target
        manifest = backup.manifest or {}
        verified = manifest.get("verified") or {}
        source = ConnInfo.from_url(db.url.get_secret_value())
        return {
            "backup": {
                "id": backup.id,
                "started_at": backup.started_at.isoformat(),
                "stored_size": backup.stored_size,
                "raw_size": backup.raw_size,
                "sha256": backup.sha256,
                "sha256_verified": bool(verified.get("sha256")),
                "label": backup.label,
                "server_version": backup.server_version,
                "row_counts": manifest.get("row_counts") or {},
                "prisma": manifest.get("prisma_migration"),
                "schema_recorded": recorded_schema(manifest)[0] is not None,
            },
            "source": {"name": db.name, "where": source.where},
            "target": {
                **plan.facts.as_json(),
                "where": target.where,
                "configured_as": configured_as(self._databases, target),
                "name": plan.target_name,
            },
            "prisma_ahead": ahead_of_backup(manifest.get("prisma_migration"), plan.facts.prisma),
            "rto_minutes": self.rto_minutes(db.name),
            "tested": (
                last_tested(self._restores.test_restores(db.name), backup.id)
                if db.protected and plan.mode == "in_place"
                else None
            ),
        }


def last_tested(tests: list[RestoreRecord], backup_id: str) -> dict[str, Any]:
    """When backup `backup_id` was last restored successfully in a drill or on a staging
    target (`backup`), and, when never, the database's last such test of any backup
    (`any`): what a protected in-place request shows its approvers."""

    def fact(r: RestoreRecord) -> dict[str, Any]:
        return {
            "backup_id": r.backup_id,
            "at": (r.finished_at or r.created_at).isoformat(),
            "how": "drill" if r.mode == DRILL else "target",
            "target": r.target_name,
            "restore_id": r.id,
        }

    same = next((r for r in tests if r.backup_id == backup_id), None)
    return {
        "backup": fact(same) if same else None,
        "any": fact(tests[0]) if tests and same is None else None,
    }
