"""Restore requests and decisions: who asked for what, and who approved it.

Request: resolve the backup, work out the target (a new database, `--into` one, or the
source itself with `--in-place`), look at what the target holds, and record a pending
request that holds the target (one open restore per target database).

Decision: `click()` applies `approvals.check_click` and moves the request with guarded
updates, so concurrent clicks start at most one restore. Execution is `RestoreRunner`'s
(`restore_run.py`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backupbot.clock import Clock
from backupbot.commands import humanize
from backupbot.commands.approvals import (
    APPROVE,
    DENY,
    ApprovalPolicy,
    CachedApprovers,
    Refusal,
    check_click,
)
from backupbot.commands.click_origin import MISMATCH, ClickOrigin, mismatch, once_posted
from backupbot.commands.restore_run import (
    BOT_ACTOR,
    RESTORE_USAGE,
    ProgressListener,
    RestoreRunner,
    record_incident,
    rto_minutes,
)
from backupbot.errors import BackupbotError, UsageError
from backupbot.phrases import Command, Name, Phrase, join, say
from backupbot.settings import DatabaseSettings, RestoreSettings
from backupbot.storage.catalog import SUCCEEDED, BackupCatalog, BackupRecord
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.liveness import owner_is_dead
from backupbot.storage.pgadmin import (
    TargetFacts,
    inspect_target,
)
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.restores import (
    CANCELLED,
    DENIED,
    EXPIRED,
    FAILED,
    PENDING,
    NewRestore,
    RestoreRecord,
    RestoreRequests,
)

log = logging.getLogger(__name__)

RESERVED_TARGETS = frozenset({"postgres", "template0", "template1"})
_TARGET_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
MAX_REASON = 500


@dataclass(frozen=True)
class ClickResult:
    """What a click did: `approved` (start the restore), `approval_recorded` (more needed),
    `denied`, `cancelled` or `refused` (with the reason; the request is unchanged)."""

    outcome: str
    record: RestoreRecord
    refusal: Refusal | None = None
    expired_now: bool = False  # the click found the request expired and closed it

    @property
    def start_restore(self) -> bool:
        return self.outcome == "approved"


def new_target_name(database: str, now: datetime) -> str:
    """`<db>_restored_<UTC timestamp>`, a valid PostgreSQL identifier of at most 63 bytes."""
    base = re.sub(r"[^a-z0-9_]", "_", database.lower())
    suffix = f"_restored_{now:%Y%m%d_%H%M%S}"
    return base[: 63 - len(suffix)] + suffix


def validate_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    reason = " ".join(reason.split())
    if not reason:
        raise UsageError('--reason needs some text, e.g. --reason "bad migration".', RESTORE_USAGE)
    if len(reason) > MAX_REASON:
        raise UsageError(f"Keep --reason under {MAX_REASON} characters.", RESTORE_USAGE)
    return reason


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
    ) -> None:
        self._databases = {d.name: d for d in databases}
        self._catalog = catalog
        self._restores = restores
        self._incidents = incidents
        self._clock = clock
        self.policy = policy
        self._approvers = approvers
        self._settings = settings
        self._runner = runner

    # -- requests -------------------------------------------------------------------------

    def rto_minutes(self, database: str) -> int:
        return rto_minutes(self._databases, self._settings, database)

    def recent_backups_text(self, database: str, limit: int = 5) -> Phrase:
        backups = [b for b in self._catalog.recent(database, limit * 4) if b.status == SUCCEEDED]
        if not backups:
            return say(
                "{db} has no verified backup yet: take one with {cmd}.",
                db=Name(database),
                cmd=Command("now", database),
            )
        lines = [
            say(
                "• {id} {at}, {size}",
                id=Name(b.id),
                at=humanize.utc(b.started_at),
                size=humanize.size(b.stored_size),
            )
            + (say(", label {label}", label=Name(b.label)) if b.label else "")
            for b in backups[:limit]
        ]
        return say("Recent verified backups of {db}:\n", db=Name(database)) + join(lines, "\n")

    def resolve_backup(self, database: str, ref: str | None) -> BackupRecord:
        """`latest` (or nothing) or a backup id (a unique prefix of 4+ characters works)."""
        if ref is None or ref.lower() == "latest":
            latest = self._catalog.latest(database, SUCCEEDED)
            if latest is None:
                raise UsageError(self.recent_backups_text(database), RESTORE_USAGE)
            return latest
        ref = ref.lower()
        if len(ref) < 4 or not re.fullmatch(r"[0-9a-f]+", ref):
            raise UsageError(
                say(
                    "{ref} is not a backup id (8 hex characters, as {status} shows) or "
                    "{latest}.\n{recent}",
                    ref=Name(ref),
                    status=Command("status"),
                    latest=Name("latest"),
                    recent=self.recent_backups_text(database),
                ),
                RESTORE_USAGE,
            )
        matches = [b for b in self._catalog.recent(database, 1000) if b.id.startswith(ref)]
        if not matches:
            try:
                other = self._catalog.get(ref)
                problem = say(
                    "Backup {ref} is a backup of {other}, not of {db}.",
                    ref=Name(ref),
                    other=Name(other.database),
                    db=Name(database),
                )
            except BackupbotError:
                problem = say("There is no backup {ref} of {db}.", ref=Name(ref), db=Name(database))
            raise UsageError(problem + "\n" + self.recent_backups_text(database), RESTORE_USAGE)
        if len(matches) > 1:
            raise UsageError(
                say(
                    "{ref} matches {n} backups ({ids}); give more of the id.",
                    ref=Name(ref),
                    n=len(matches),
                    ids=join(Phrase((Name(b.id),)) for b in matches[:5]),
                ),
                RESTORE_USAGE,
            )
        backup = matches[0]
        if backup.status != SUCCEEDED:
            raise UsageError(
                say("Backup {id} {status}", id=Name(backup.id), status=backup.status)
                + (say(" ({error})", error=backup.error) if backup.error else "")
                + "; only verified backups can be restored.\n"
                + self.recent_backups_text(database),
                RESTORE_USAGE,
            )
        return backup

    def _target(
        self, db: DatabaseSettings, into: str | None, in_place: bool, now: datetime
    ) -> tuple[str, str]:
        """(mode, target database name)."""
        source = ConnInfo.from_url(db.url.get_secret_value())
        if in_place and into is not None:
            raise UsageError(
                "Choose one: --into TARGET restores into another database, --in-place "
                "overwrites the source.",
                RESTORE_USAGE,
            )
        if in_place:
            return "in_place", source.dbname
        if into is None:
            return "new", new_target_name(db.name, now)
        if not _TARGET_RE.match(into):
            raise UsageError(
                f"{into!r} is not a usable database name: use letters, digits, '_' or '-', "
                "at most 63, starting with a letter or '_'.",
                RESTORE_USAGE,
            )
        if into.lower() in RESERVED_TARGETS:
            raise UsageError(f"{into} is a system database; choose another target.", RESTORE_USAGE)
        if into == source.dbname:
            raise UsageError(
                f"{into} is the source database itself. To overwrite it, say so with "
                "--in-place (it needs approval and takes a safety backup first).",
                RESTORE_USAGE,
            )
        return "into", into

    def _configured_as(self, source_db: DatabaseSettings, target: ConnInfo) -> str | None:
        """The name of a configured database that the target is, if any."""
        for other in self._databases.values():
            conn = ConnInfo.from_url(other.url.get_secret_value())
            if (conn.host, conn.port, conn.dbname) == (target.host, target.port, target.dbname):
                return other.name
        return None

    def _plan(
        self,
        database: str,
        ref: str | None,
        into: str | None,
        in_place: bool,
        now: datetime,
    ) -> tuple[DatabaseSettings, BackupRecord, str, ConnInfo, TargetFacts]:
        db = self._db(database)
        backup = self.resolve_backup(database, ref)
        mode, target_name = self._target(db, into, in_place, now)
        target = ConnInfo.from_url(db.url.get_secret_value()).with_dbname(target_name)
        facts = inspect_target(target)
        return db, backup, mode, target, facts

    def _new_restore(
        self,
        db: DatabaseSettings,
        backup: BackupRecord,
        mode: str,
        target: ConnInfo,
        facts: TargetFacts,
        requester: str,
        reason: str | None,
        now: datetime,
        break_glass: bool,
    ) -> NewRestore:
        manifest = backup.manifest or {}
        verified = manifest.get("verified") or {}
        source = ConnInfo.from_url(db.url.get_secret_value())
        preview = {
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
            },
            "source": {"name": db.name, "where": source.where},
            "target": {
                **facts.as_json(),
                "where": target.where,
                "configured_as": self._configured_as(db, target),
            },
            "rto_minutes": self.rto_minutes(db.name),
        }
        required = self.policy.required_for(protected=db.protected, in_place=mode == "in_place")
        return NewRestore(
            database=db.name,
            backup_id=backup.id,
            mode=mode,
            target_db=target.dbname,
            target_where=target.where,
            requester=requester,
            reason=reason,
            required_approvals=required,
            expires_at=now + self.policy.timeout,
            preview=preview,
            break_glass=break_glass,
        )

    def request(
        self,
        database: str,
        ref: str | None,
        *,
        requester: str,
        into: str | None = None,
        in_place: bool = False,
        reason: str | None = None,
    ) -> RestoreRecord:
        """Record a pending restore request; raises `BackupbotError` in plain words."""
        now = self._clock.now()
        try:
            reason = validate_reason(reason)
            plan = self._plan(database, ref, into, in_place, now)
            new = self._new_restore(*plan, requester, reason, now, break_glass=False)
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

    # -- decisions ------------------------------------------------------------------------

    def click(
        self, restore_id: str, action: str, user: str, origin: ClickOrigin | None = None
    ) -> ClickResult:
        """Apply `user`'s Approve/Deny/Cancel click, made on the message at `origin` (None:
        not from Slack). Never raises for a refused click."""
        record = once_posted(lambda: self._restores.get(restore_id), origin)
        now = self._clock.now()
        what = say("restore request {id}", id=Name(record.id))
        wrong = mismatch(origin, record.channel, record.message_ts, what)
        if origin is not None and wrong is not None:
            refusal = Refusal(MISMATCH, wrong)
            return self._refuse(record, action, user, now, refusal, facts=origin.facts())
        expired_now = False
        for _attempt in range(10):
            record = self._restores.get(restore_id)
            if record.status == PENDING and now >= record.expires_at:
                expired_now = self._expire(record, now) or expired_now
                record = self._restores.get(restore_id)
            try:
                found = check_click(record, action, user, now, self._approvers.is_approver)
            except BackupbotError as exc:
                found = Refusal("unverifiable", str(exc))
            if found is not None:
                return self._refuse(record, action, user, now, found, expired_now=expired_now)
            done = (
                self._approve(record, user, now)
                if action == APPROVE
                else self._close(record, DENIED if action == DENY else CANCELLED, user, now)
            )
            if done is not None:
                return done
        record = self._restores.get(restore_id)
        return ClickResult(
            "refused", record, Refusal("busy", "The request kept changing; try again.")
        )

    def _refuse(
        self,
        record: RestoreRecord,
        action: str,
        user: str,
        now: datetime,
        refusal: Refusal,
        *,
        expired_now: bool = False,
        facts: dict[str, str] | None = None,
    ) -> ClickResult:
        """Record the refused click; the request is unchanged."""
        self._record(
            now,
            user,
            "restore.click_refused",
            "refused",
            record.database,
            record,
            clicked=action,
            code=refusal.code,
            reason=str(refusal.message),
            **(facts or {}),
        )
        return ClickResult("refused", record, refusal, expired_now)

    def _approve(self, record: RestoreRecord, user: str, now: datetime) -> ClickResult | None:
        """Add `user`'s approval to `record` as read; None if it changed meanwhile."""
        # Whether *this* approval completes the request is decided by the state it was
        # applied to; reading the row afterwards could see a later approval.
        final = record.approval_count + 1 >= record.required_approvals
        with self._incidents.atomic():
            if not self._restores.add_approval(record.id, user, now, record):
                return None
            record = self._restores.get(record.id)
            if final:
                self._record(
                    now,
                    user,
                    "restore.approved",
                    "ok",
                    record.database,
                    record,
                    approvals=record.approvals,
                )
                return ClickResult("approved", record)
            self._record(
                now,
                user,
                "restore.approval_recorded",
                "ok",
                record.database,
                record,
                approvals=record.approvals,
                required_approvals=record.required_approvals,
            )
            return ClickResult("approval_recorded", record)

    def _close(
        self, record: RestoreRecord, status: str, user: str, now: datetime
    ) -> ClickResult | None:
        """Deny or cancel the pending `record`; None if it changed meanwhile."""
        with self._incidents.atomic():
            if not self._restores.close_pending(record.id, status, user, now):
                return None
            record = self._restores.get(record.id)
            self._record(now, user, f"restore.{status}", status, record.database, record)
            return ClickResult(status, record)

    def _expire(self, record: RestoreRecord, now: datetime) -> bool:
        with self._incidents.atomic():
            if not self._restores.close_pending(record.id, EXPIRED, BOT_ACTOR, now):
                return False
            self._record(
                now,
                BOT_ACTOR,
                "restore.expired",
                "expired",
                record.database,
                record,
                expired_at=record.expires_at.isoformat(),
            )
        return True

    def withdraw(self, restore_id: str, why: str) -> bool:
        """Close a pending request nobody can act on (e.g. its message was never posted)."""
        now = self._clock.now()
        record = self._restores.get(restore_id)
        with self._incidents.atomic():
            if not self._restores.close_pending(restore_id, CANCELLED, BOT_ACTOR, now):
                return False
            self._record(
                now,
                BOT_ACTOR,
                "restore.cancelled",
                "cancelled",
                record.database,
                record,
                reason=why,
            )
        return True

    def expire_due(self) -> list[RestoreRecord]:
        """Close every pending request past its expiry; returns the ones closed now."""
        now = self._clock.now()
        return [
            self._restores.get(r.id)
            for r in self._restores.due_to_expire(now)
            if self._expire(r, now)
        ]

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
            failed.append(self._restores.get(r.id))
        return failed

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
            plan = self._plan(database, ref, into, in_place, now)
            self.fail_abandoned()
            with self._incidents.atomic():
                record = self._restores.create(
                    self._new_restore(*plan, actor, reason, now, break_glass=True), now
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

    # -- execution ------------------------------------------------------------------------

    # -- helpers --------------------------------------------------------------------------

    def _db(self, name: str) -> DatabaseSettings:
        db = self._databases.get(name)
        if db is None:
            raise UsageError(f"There is no configured database named {name!r}.", RESTORE_USAGE)
        return db

    def _record(self, *args: Any, **details: Any) -> None:
        record_incident(self._incidents, *args, **details)
