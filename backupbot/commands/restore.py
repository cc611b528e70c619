"""Restore requests: who asked for what, and what happens to it.

`RestoreService` is the entry point. A request resolves the backup and the target
(`restore_lookup.py`), inspects the target and builds the preview (`restore_request.py`)
and records a pending request that holds the target (one open restore per target
database). Clicks, expiry and withdrawal are `RestoreDecisions`' (`restore_decisions.py`);
execution is `RestoreRunner`'s (`restore_run.py`). Break-glass restores skip approval.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from backupbot.clock import Clock
from backupbot.commands.approvals import ApprovalPolicy, CachedApprovers
from backupbot.commands.click_origin import ClickOrigin
from backupbot.commands.provider_request import ProviderAsk, ProviderPlanner, check_ask
from backupbot.commands.restore_decisions import ClickResult, Reminder, RestoreDecisions
from backupbot.commands.restore_lookup import BackupLookup
from backupbot.commands.restore_model import (
    BOT_ACTOR,
    RESTORE_USAGE,
    ProgressListener,
    record_incident,
)
from backupbot.commands.restore_request import RestorePlanner, validate_reason
from backupbot.commands.restore_run import RestoreRunner
from backupbot.commands.restore_targets import Targets
from backupbot.commands.restore_workdir import remove_work_dirs, work_root
from backupbot.errors import BackupbotError, UsageError
from backupbot.phrases import Phrase
from backupbot.settings import DatabaseSettings, RestoreSettings
from backupbot.storage.catalog import BackupCatalog, BackupRecord
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.liveness import owner_is_dead
from backupbot.storage.pg_sessions import child_application_name, end_sessions
from backupbot.storage.restores import FAILED, RestoreRecord, RestoreRequests

log = logging.getLogger(__name__)


class RestoreService:
    """Requests and decisions; hands approved restores to `runner`."""

    def __init__(
        self,
        *,
        databases: Sequence[DatabaseSettings],
        catalog: BackupCatalog,
        restores: RestoreRequests,
        incidents: IncidentLog,
        clock: Clock,
        policy: ApprovalPolicy,
        approvers: CachedApprovers,
        settings: RestoreSettings,
        runner: RestoreRunner,
        targets: Targets | None = None,
    ) -> None:
        self._restores = restores
        self._databases = {d.name: d for d in databases}
        self._targets = targets or Targets()
        self._incidents = incidents
        self._clock = clock
        self.policy = policy
        self._runner = runner
        self._work_root = work_root(settings)
        self._lookup = BackupLookup(catalog)
        self._planner = RestorePlanner(
            databases=self._databases,
            lookup=self._lookup,
            policy=policy,
            approvers=approvers,
            settings=settings,
            targets=self._targets,
            restores=restores,
        )
        self._providers = ProviderPlanner(
            databases=self._databases,
            catalog=catalog,
            policy=policy,
            approvers=approvers,
            settings=settings,
        )
        self._decisions = RestoreDecisions(
            restores=restores, incidents=incidents, clock=clock, approvers=approvers
        )

    # -- requests -------------------------------------------------------------------------

    def rto_minutes(self, database: str) -> int:
        return self._planner.rto_minutes(database)

    def recent_backups_text(self, database: str, limit: int = 5) -> Phrase:
        return self._lookup.recent_text(database, limit)

    def resolve_backup(self, database: str, ref: str | None) -> BackupRecord:
        """`latest` (or nothing) or a backup id (a unique prefix of 4+ characters works)."""
        return self._lookup.resolve(database, ref)

    def request(
        self,
        database: str,
        ref: str | None,
        *,
        requester: str,
        into: str | None = None,
        in_place: bool = False,
        reason: str | None = None,
        provider: ProviderAsk | None = None,
    ) -> RestoreRecord:
        """Record a pending restore request; raises `BackupbotError` in plain words.
        With `provider` asking for a point or snapshot, the source is the database's
        provider (`provider_request.py`) instead of a backup."""
        now = self._clock.now()
        ask = provider or ProviderAsk(in_place=in_place)
        try:
            reason = validate_reason(reason)
            check_ask(ask, ref, into)
            if ask.wanted:
                db = self._planner.db(database)
                new = self._providers.new_restore(db, ask, requester, reason, now)
            else:
                plan = self._planner.plan(database, ref, into, in_place, now)
                new = self._planner.new_restore(plan, requester, reason, now, break_glass=False)
            self.fail_abandoned()  # a dead process's restore must not block the target
            with self._incidents.atomic():
                record = self._restores.create(new, now)
                self._record(
                    now,
                    requester,
                    "restore.requested",
                    "ok",
                    database,
                    record,
                    reason=reason,
                    mode=record.mode,
                    target=record.target_where,
                    required_approvals=record.required_approvals,
                    expires_at=record.expires_at.isoformat(),
                    provider=record.provider,
                    point_at=record.point_at.isoformat() if record.point_at else None,
                    snapshot_id=record.snapshot_id,
                )
        except BackupbotError as exc:
            self._record(
                now,
                requester,
                "restore.refused",
                "refused",
                database,
                None,
                **exc.refusal(),
                command_reason=reason,
            )
            exc.recorded = True  # see commands/refusals.py
            raise
        return record

    def set_message(self, restore_id: str, channel: str, ts: str) -> None:
        self._restores.set_message(restore_id, channel, ts)

    def get(self, restore_id: str) -> RestoreRecord:
        return self._restores.get(restore_id)

    def recent(self, database: str | None = None, limit: int = 20) -> list[RestoreRecord]:
        return self._restores.recent(database, limit)

    # -- decisions (`RestoreDecisions`) --------------------------------------------------

    def click(
        self, restore_id: str, action: str, user: str, origin: ClickOrigin | None = None
    ) -> ClickResult:
        """Apply `user`'s Approve/Deny/Cancel click (see `RestoreDecisions.click`)."""
        return self._decisions.click(restore_id, action, user, origin)

    def withdraw(self, restore_id: str, why: str) -> bool:
        """Close a pending request nobody can act on (e.g. its message was never posted)."""
        return self._decisions.withdraw(restore_id, why)

    def expire_due(self) -> list[RestoreRecord]:
        """Close every pending request past its expiry; returns the ones closed now."""
        return self._decisions.expire_due()

    def reminders_due(self) -> list[Reminder]:
        """Claim the reminders due now (`RestoreDecisions.reminders_due`)."""
        return self._decisions.reminders_due()

    def fail_abandoned(self) -> list[RestoreRecord]:
        """Fail the running restores whose process stopped (a stale heartbeat, or an
        owner on this host that is gone; `storage/liveness.py`). Returns those failed."""
        now = self._clock.now()
        failed = []
        for r in self._restores.abandoned(now, owner_is_dead):
            message = (
                "The bot stopped while this restore was running; the target "
                f"{r.target_db} may be partially restored."
            )
            if r.is_provider:
                message = (
                    f"The bot stopped while following {r.provider}'s restore; its operation "
                    f"{r.operation_id or '(not started)'} may still be running: check the "
                    "provider's dashboard."
                )
            with self._incidents.atomic():
                if not self._restores.finish(
                    r.id,
                    FAILED,
                    now,
                    error=message,
                    result={
                        "target_state": "unknown (the bot stopped)",
                        "failed_stage": r.stage,
                    },
                    seen=r,
                ):
                    continue  # its owner beat meanwhile, or another process took it
                self._record(
                    now,
                    BOT_ACTOR,
                    "restore.abandoned",
                    "failed",
                    r.database,
                    r,
                    error=message,
                    stage=r.stage,
                    owner=r.owner,
                )
            self._end_orphan(r)
            remove_work_dirs(self._work_root, r.id)
            failed.append(self._restores.get(r.id))
        return failed

    def _end_orphan(self, record: RestoreRecord) -> None:
        """End the target sessions a dead process's pg_restore may still hold: it runs on
        as an orphan after its bot was SIGKILLed, and exits once its sessions end."""
        db = self._databases.get(record.database)
        if db is None or record.stage != "restore":  # only that stage runs pg_restore
            return
        try:
            target = self._targets.conn(db, record.target_name, record.target_db)
        except BackupbotError:
            return  # the target was removed from the configuration meanwhile
        ended = end_sessions(target, child_application_name(target, "pg_restore", record.id))
        if ended:
            log.warning("ended %d session(s) of the abandoned restore %s", ended, record.id)

    def unannounced(self) -> list[RestoreRecord]:
        return [r for r in self._restores.unannounced() if not r.is_open]

    def mark_announced(self, restore_id: str) -> bool:
        return self._restores.mark_announced(restore_id)

    def unmark_announced(self, restore_id: str) -> None:
        self._restores.unmark_announced(restore_id)

    # -- break glass ----------------------------------------------------------------------

    def break_glass(
        self,
        database: str,
        ref: str | None,
        *,
        actor: str,
        reason: str,
        into: str | None = None,
        in_place: bool = False,
        on_progress: ProgressListener = lambda _p: None,
    ) -> RestoreRecord:
        """Restore now without approval (Slack is down). Recorded as break-glass; the
        channel is told as soon as it is reachable (`unannounced`)."""
        now = self._clock.now()
        reason = validate_reason(reason) or ""
        if not reason:
            raise UsageError("Break-glass restores need --reason.", RESTORE_USAGE)
        try:
            plan = self._planner.plan(database, ref, into, in_place, now)
            self.fail_abandoned()
            with self._incidents.atomic():
                record = self._restores.create(
                    self._planner.new_restore(plan, actor, reason, now, break_glass=True), now
                )
                self._record(
                    now,
                    actor,
                    "restore.break_glass",
                    "ok",
                    database,
                    record,
                    reason=reason,
                    mode=record.mode,
                    target=record.target_where,
                    break_glass=True,
                )
        except BackupbotError as exc:
            self._record(
                now,
                actor,
                "restore.refused",
                "refused",
                database,
                None,
                **exc.refusal(),
                break_glass=True,
            )
            exc.recorded = True  # see commands/refusals.py
            raise
        return self.execute(record.id, on_progress)

    def interrupt_all(self) -> None:
        """The bot is stopping: interrupt running restores and drills (`RestoreRunner`)."""
        self._runner.interrupt_all()

    def claim(self, restore_id: str) -> bool:
        """Take an approved, waiting restore for this process (`RestoreRunner.claim`)."""
        return self._runner.claim(restore_id)

    def execute(
        self,
        restore_id: str,
        on_progress: ProgressListener = lambda _p: None,
        *,
        claimed: bool = False,
    ) -> RestoreRecord:
        """Run an approved restore (see `RestoreRunner.execute`)."""
        return self._runner.execute(restore_id, on_progress, claimed=claimed)

    # -- the job queue --------------------------------------------------------------------

    def hold(self, record: RestoreRecord, holder: str) -> bool:
        """A queue takes the waiting restore (`RestoreRequests.hold`)."""
        return self._restores.hold(record, holder)

    def waiting(self) -> list[RestoreRecord]:
        """Approved restores no process has claimed yet."""
        return self._restores.waiting()

    def fail_unqueued(self, record: RestoreRecord) -> RestoreRecord:
        """The queue refused an approved restore: fail it, so it does not hold its target."""
        now = self._clock.now()
        message = "The restore could not be queued for a worker; nothing was started."
        with self._incidents.atomic():
            if self._restores.finish(
                record.id,
                FAILED,
                now,
                error=message,
                result={"target_state": f"{record.target_db} was not touched"},
            ):
                self._record(
                    now,
                    BOT_ACTOR,
                    "restore.failed",
                    "failed",
                    record.database,
                    record,
                    error=message,
                )
        return self._restores.get(record.id)

    # -- helpers --------------------------------------------------------------------------

    def _record(self, *args: Any, **details: Any) -> None:
        record_incident(self._incidents, *args, **details)
