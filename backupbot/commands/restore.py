"""Restores: a request, a second person's decision, then restore and verify.

Request: resolve the backup, work out the target (a new database, `--into` one, or the
source itself with `--in-place`), look at what the target holds, and record a pending
request that holds the target (one open restore per target database).

Decision: `click()` applies `approvals.check_click` and moves the request with guarded
updates, so concurrent clicks start at most one restore.

Execution: download the artifact and check its SHA-256 before touching anything ->
safety backup of a target that has data (label `pre-restore`) -> create the target if
missing -> `pg_restore --exit-on-error` -> compare every table's row count with the
manifest -> report stage timings against the RTO. Any failure says what state the
target is in.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from pydantic import SecretStr

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
from backupbot.commands.backup import BackupService
from backupbot.errors import BackupbotError, UsageError, VerificationFailed
from backupbot.settings import DatabaseSettings, RestoreSettings
from backupbot.storage.artifacts import ArtifactStore
from backupbot.storage.catalog import SUCCEEDED, BackupCatalog, BackupRecord
from backupbot.storage.dumpstream import unpack_artifact
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.pgadmin import (
    TargetFacts,
    create_database,
    drop_database,
    inspect_target,
)
from backupbot.storage.pgconn import ConnInfo, url_with_dbname
from backupbot.storage.pginspect import count_rows
from backupbot.storage.pgtools import PgRestore, find_binaries
from backupbot.storage.restores import (
    CANCELLED,
    DENIED,
    EXPIRED,
    FAILED,
    PENDING,
    RUNNING,
    NewRestore,
    RestoreRecord,
    RestoreRequests,
)
from backupbot.storage.restores import (
    SUCCEEDED as RESTORE_SUCCEEDED,
)

log = logging.getLogger(__name__)

RESTORE_USAGE = "/backup restore DB [latest|BACKUP_ID] [--into TARGET] [--in-place] [--reason TEXT]"
BOT_ACTOR = "backupbot"
SAFETY_LABEL = "pre-restore"
RESERVED_TARGETS = frozenset({"postgres", "template0", "template1"})
_TARGET_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
_SMALL_ARCHIVE = 8 << 20  # below this, parallel pg_restore costs more than it saves
MAX_REASON = 500

STAGES = ("download", "safety", "create", "restore", "verify")


@dataclass(frozen=True)
class RestoreProgress:
    """A stage starting; `timings` holds the seconds each finished stage took."""

    restore_id: str
    stage: str
    timings: dict[str, float]
    safety_backup_id: str | None = None


ProgressListener = Callable[[RestoreProgress], None]


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


@dataclass(frozen=True)
class Mismatch:
    table: str
    expected: int
    actual: int | None  # None: the table is missing from the target


def compare_counts(expected: dict[str, int], actual: dict[str, int]) -> list[Mismatch]:
    """Tables whose row count in the target differs from the backup's manifest."""
    return [
        Mismatch(table, rows, actual.get(table))
        for table, rows in sorted(expected.items())
        if actual.get(table) != rows
    ]


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


@dataclass
class _Run:
    """Book-keeping of one execution, for the result and the failure message."""

    timings: dict[str, float] = field(default_factory=dict)
    safety_backup_id: str | None = None
    created: bool = False
    touched: bool = False
    stage: str = "download"


class RestoreService:
    def __init__(
        self,
        *,
        databases: Sequence[DatabaseSettings],
        catalog: BackupCatalog,
        restores: RestoreRequests,
        incidents: IncidentLog,
        store: ArtifactStore,
        backups: BackupService,
        clock: Clock,
        policy: ApprovalPolicy,
        approvers: CachedApprovers,
        settings: RestoreSettings,
        pg_bin_dirs: Sequence[Path] = (),
        heartbeat_seconds: float = 30.0,
    ) -> None:
        self._databases = {d.name: d for d in databases}
        self._catalog = catalog
        self._restores = restores
        self._heartbeat_seconds = heartbeat_seconds
        self._incidents = incidents
        self._store = store
        self._backups = backups
        self._clock = clock
        self.policy = policy
        self._approvers = approvers
        self._settings = settings
        self._pg_bin_dirs = list(pg_bin_dirs)

    # -- requests -------------------------------------------------------------------------

    def rto_minutes(self, database: str) -> int:
        db = self._databases.get(database)
        return (db.rto_minutes if db else None) or self._settings.rto_minutes

    def recent_backups_text(self, database: str, limit: int = 5) -> str:
        backups = [b for b in self._catalog.list(database, limit * 4) if b.status == SUCCEEDED]
        if not backups:
            return f"{database} has no verified backup yet: take one with `/backup now {database}`."
        lines = [
            f"• `{b.id}` {humanize.utc(b.started_at)}, {humanize.size(b.stored_size)}"
            + (f", label `{b.label}`" if b.label else "")
            for b in backups[:limit]
        ]
        return f"Recent verified backups of {database}:\n" + "\n".join(lines)

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
                f"{ref!r} is not a backup id (8 hex characters, as `/backup status` shows) or "
                f"`latest`.\n{self.recent_backups_text(database)}",
                RESTORE_USAGE,
            )
        matches = [b for b in self._catalog.list(database, 1000) if b.id.startswith(ref)]
        if not matches:
            try:
                other = self._catalog.get(ref)
                problem = f"Backup `{ref}` is a backup of {other.database}, not of {database}."
            except BackupbotError:
                problem = f"There is no backup `{ref}` of {database}."
            raise UsageError(f"{problem}\n{self.recent_backups_text(database)}", RESTORE_USAGE)
        if len(matches) > 1:
            ids = ", ".join(f"`{b.id}`" for b in matches[:5])
            raise UsageError(
                f"`{ref}` matches {len(matches)} backups ({ids}); give more of the id.",
                RESTORE_USAGE,
            )
        backup = matches[0]
        if backup.status != SUCCEEDED:
            raise UsageError(
                f"Backup `{backup.id}` {backup.status}"
                + (f" ({backup.error})" if backup.error else "")
                + f"; only verified backups can be restored.\n{self.recent_backups_text(database)}",
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
            record = self._restores.create(new, now)
        except BackupbotError as exc:
            self._record(
                now,
                requester,
                "restore.refused",
                "refused",
                database,
                None,
                reason=str(exc),
                command_reason=reason,
            )
            raise
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
        return record

    def set_message(self, restore_id: str, channel: str, ts: str) -> None:
        self._restores.set_message(restore_id, channel, ts)

    def get(self, restore_id: str) -> RestoreRecord:
        return self._restores.get(restore_id)

    def recent(self, database: str | None = None, limit: int = 20) -> list[RestoreRecord]:
        return self._restores.list(database, limit)

    # -- decisions ------------------------------------------------------------------------

    def click(self, restore_id: str, action: str, user: str) -> ClickResult:
        """Apply `user`'s Approve/Deny/Cancel click. Never raises for a refused click."""
        now = self._clock.now()
        expired_now = False
        for _attempt in range(10):
            record = self._restores.get(restore_id)
            if record.status == PENDING and now >= record.expires_at:
                expired_now = self._expire(record, now) or expired_now
                record = self._restores.get(restore_id)
            try:
                refusal = check_click(record, action, user, now, self._approvers.is_approver)
            except BackupbotError as exc:
                refusal = Refusal("unverifiable", str(exc))
            if refusal is not None:
                self._record(
                    now,
                    user,
                    "restore.click_refused",
                    "refused",
                    record.database,
                    record,
                    clicked=action,
                    code=refusal.code,
                    reason=refusal.message,
                )
                return ClickResult("refused", record, refusal, expired_now)
            if action == APPROVE:
                if not self._restores.add_approval(record.id, user, now, record):
                    continue  # someone else changed it first: look again
                record = self._restores.get(restore_id)
                if record.status == RUNNING:
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
            status = DENIED if action == DENY else CANCELLED
            if not self._restores.close_pending(record.id, status, user, now):
                continue
            record = self._restores.get(restore_id)
            self._record(now, user, f"restore.{status}", status, record.database, record)
            return ClickResult(status, record)
        record = self._restores.get(restore_id)
        return ClickResult(
            "refused", record, Refusal("busy", "The request kept changing; try again.")
        )

    def _expire(self, record: RestoreRecord, now: datetime) -> bool:
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
        if not self._restores.close_pending(restore_id, CANCELLED, BOT_ACTOR, now):
            return False
        self._record(
            now, BOT_ACTOR, "restore.cancelled", "cancelled", record.database, record, reason=why
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
        """Running restores whose process died (start-up clean-up)."""
        now = self._clock.now()
        failed = []
        for r in self._restores.abandoned(now):
            message = (
                "The bot stopped while this restore was running; the target "
                f"{r.target_db} may be partially restored."
            )
            if self._restores.finish(
                r.id,
                FAILED,
                now,
                error=message,
                result={"target_state": "unknown (the bot stopped)"},
            ):
                self._record(
                    now, BOT_ACTOR, "restore.failed", "failed", r.database, r, error=message
                )
                failed.append(self._restores.get(r.id))
        return failed

    def unannounced(self) -> list[RestoreRecord]:
        return [r for r in self._restores.unannounced() if not r.is_open]

    def mark_announced(self, restore_id: str) -> bool:
        return self._restores.mark_announced(restore_id)

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
            record = self._restores.create(
                self._new_restore(*plan, actor, reason, now, break_glass=True), now
            )
        except BackupbotError as exc:
            self._record(
                now,
                actor,
                "restore.refused",
                "refused",
                database,
                None,
                reason=str(exc),
                break_glass=True,
            )
            raise
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
        return self.execute(record.id, on_progress)

    # -- execution ------------------------------------------------------------------------

    def execute(
        self, restore_id: str, on_progress: ProgressListener = lambda _p: None
    ) -> RestoreRecord:
        """Run an approved restore. Never raises for expected failures: the returned
        record says `succeeded` or `failed`, with `result['target_state']` on failure."""
        record = self._restores.get(restore_id)
        if record.status != RUNNING:
            return record
        db = self._db(record.database)
        backup = self._catalog.get(record.backup_id)
        target = ConnInfo.from_url(db.url.get_secret_value()).with_dbname(record.target_db)
        run = _Run()
        started = time.monotonic()
        self._record(
            self._clock.now(),
            record.decided_by or BOT_ACTOR,
            "restore.started",
            "ok",
            record.database,
            record,
            mode=record.mode,
            target=record.target_where,
            break_glass=record.break_glass,
        )
        work_root = self._settings.work_dir or Path(tempfile.gettempdir())
        work = None
        beating = threading.Event()
        threading.Thread(
            target=self._beat, args=(record.id, beating), name=f"heartbeat-{record.id}", daemon=True
        ).start()
        try:
            work_root.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f"backupbot-{record.id}-", dir=work_root))
            result = self._execute(record, db, backup, target, work, run, started, on_progress)
        except BaseException as exc:
            return self._fail(record, run, started, exc, target)
        finally:
            beating.set()
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
        return result

    def _beat(self, restore_id: str, stop: threading.Event) -> None:
        """Keep the heartbeat fresh through long stages (a multi-hour pg_restore), so the
        restore is not mistaken for one whose process died."""
        while not stop.wait(self._heartbeat_seconds):
            try:
                self._restores.heartbeat(restore_id, self._clock.now())
            except Exception:
                log.exception("could not record the heartbeat of restore %s", restore_id)

    def _stage(
        self, record: RestoreRecord, run: _Run, stage: str, listener: ProgressListener
    ) -> float:
        run.stage = stage
        self._restores.progress(
            record.id, stage, self._clock.now(), safety_backup_id=run.safety_backup_id
        )
        try:
            listener(RestoreProgress(record.id, stage, dict(run.timings), run.safety_backup_id))
        except Exception:
            log.exception("restore progress listener failed; the restore goes on")
        return time.monotonic()

    def _execute(
        self,
        record: RestoreRecord,
        db: DatabaseSettings,
        backup: BackupRecord,
        target: ConnInfo,
        work: Path,
        run: _Run,
        started: float,
        listener: ProgressListener,
    ) -> RestoreRecord:
        if not (backup.artifact_key and backup.sha256 and backup.stored_size and backup.raw_size):
            raise VerificationFailed(f"Backup {backup.id} has no stored artifact to restore.")
        # 1. The artifact, checked byte for byte, before anything is touched.
        t = self._stage(record, run, "download", listener)
        archive = unpack_artifact(
            self._store,
            backup.artifact_key,
            work / "archive.dump",
            sha256=backup.sha256,
            stored_size=backup.stored_size,
            raw_size=backup.raw_size,
        )
        run.timings["download"] = time.monotonic() - t
        facts = inspect_target(target)
        binaries = find_binaries(_server_major(target), self._pg_bin_dirs)
        # 2. A safety backup of whatever the restore would overwrite.
        if facts.has_data:
            t = self._stage(record, run, "safety", listener)
            self._safety_backup(record, db, target, run)
            run.timings["safety"] = time.monotonic() - t
        # 3. The target.
        if not facts.exists:
            t = self._stage(record, run, "create", listener)
            create_database(target)
            run.created = True
            run.timings["create"] = time.monotonic() - t
        # 4. pg_restore.
        t = self._stage(record, run, "restore", listener)
        run.touched = True
        PgRestore(
            binaries,
            target,
            archive.path,
            jobs=self._jobs(archive.raw_size),
            clean=facts.has_data,
            no_owner=self._settings.no_owner,
            no_acl=self._settings.no_acl,
        ).run()
        run.timings["restore"] = time.monotonic() - t
        # 5. Verification against the manifest.
        t = self._stage(record, run, "verify", listener)
        expected: dict[str, int] = (backup.manifest or {}).get("row_counts") or {}
        with target.connect(autocommit=True) as conn:
            actual = count_rows(conn)
        mismatches = compare_counts(expected, actual)
        run.timings["verify"] = time.monotonic() - t
        now = self._clock.now()
        self._record(
            now,
            BOT_ACTOR,
            "restore.verified",
            "failed" if mismatches else "ok",
            record.database,
            record,
            tables=len(expected),
            rows=sum(expected.values()),
            mismatches=[m.__dict__ for m in mismatches[:50]],
        )
        if mismatches:
            raise _VerificationMismatch(mismatches)
        total = time.monotonic() - started
        rto = self.rto_minutes(record.database)
        result = {
            "timings": {k: round(v, 3) for k, v in run.timings.items()},
            "total_seconds": round(total, 3),
            "rto_minutes": rto,
            "within_rto": total <= rto * 60,
            "tables": len(expected),
            "rows": sum(expected.values()),
            "extra_tables": sorted(set(actual) - set(expected)),
            "safety_backup_id": run.safety_backup_id,
            "jobs": self._jobs(archive.raw_size),
            "target_state": "restored and verified",
        }
        self._restores.finish(record.id, RESTORE_SUCCEEDED, now, result=result)
        self._record(
            now,
            BOT_ACTOR,
            "restore.succeeded",
            "ok",
            record.database,
            record,
            recovery_seconds=result["total_seconds"],
            rto_minutes=rto,
            within_rto=result["within_rto"],
            timings=result["timings"],
            safety_backup_id=run.safety_backup_id,
            break_glass=record.break_glass,
        )
        return self._restores.get(record.id)

    def _safety_backup(
        self, record: RestoreRecord, db: DatabaseSettings, target: ConnInfo, run: _Run
    ) -> None:
        if record.mode == "in_place":
            started = self._backups.start(db.name, BOT_ACTOR, SAFETY_LABEL)
        else:
            source = DatabaseSettings(
                name=record.target_db,
                url=SecretStr(url_with_dbname(db.url.get_secret_value(), record.target_db)),
                provider=db.provider,
            )
            started = self._backups.start(record.target_db, BOT_ACTOR, SAFETY_LABEL, source=source)
        run.safety_backup_id = started.id
        safety = self._backups.run(started)
        now = self._clock.now()
        self._record(
            now,
            BOT_ACTOR,
            "restore.safety_backup",
            "ok" if safety.status == SUCCEEDED else "failed",
            record.database,
            record,
            safety_backup_id=safety.id,
            error=safety.error,
        )
        if safety.status != SUCCEEDED:
            run.safety_backup_id = None
            raise _SafetyBackupFailed(
                f"The safety backup of {record.target_db} failed ({safety.error}), so the "
                "restore did not start."
            )
        self._restores.progress(record.id, "safety", now, safety_backup_id=safety.id)

    def _jobs(self, raw_size: int) -> int:
        if raw_size < _SMALL_ARCHIVE:
            return 1
        return self._settings.jobs or max(1, min(4, os.cpu_count() or 1))

    def _fail(
        self,
        record: RestoreRecord,
        run: _Run,
        started: float,
        exc: BaseException,
        target: ConnInfo,
    ) -> RestoreRecord:
        if isinstance(exc, BackupbotError):
            message = str(exc)
        elif isinstance(exc, psycopg.OperationalError):
            message = (
                f"The connection to {target.host}:{target.port} was lost during the "
                f"{run.stage} stage."
            )
        elif isinstance(exc, Exception):
            log.exception("restore %s crashed", record.id)
            message = "An internal error stopped the restore; the bot's log has the details."
        else:
            message = "The restore was interrupted (the bot or CLI was stopped)."
        state = self._target_state(record, run, target, exc)
        now = self._clock.now()
        result: dict[str, Any] = {
            "timings": {k: round(v, 3) for k, v in run.timings.items()},
            "total_seconds": round(time.monotonic() - started, 3),
            "failed_stage": run.stage,
            "target_state": state,
            "safety_backup_id": run.safety_backup_id,
        }
        if isinstance(exc, _VerificationMismatch):
            result["mismatches"] = [m.__dict__ for m in exc.mismatches[:50]]
        self._restores.finish(record.id, FAILED, now, result=result, error=message)
        self._record(
            now,
            BOT_ACTOR,
            "restore.failed",
            "failed",
            record.database,
            record,
            error=message,
            stage=run.stage,
            target_state=state,
            safety_backup_id=run.safety_backup_id,
            error_type=type(exc).__name__,
        )
        if not isinstance(exc, Exception):
            raise exc
        return self._restores.get(record.id)

    def _target_state(
        self, record: RestoreRecord, run: _Run, target: ConnInfo, exc: BaseException
    ) -> str:
        if not run.touched:
            return f"{record.target_db} was not touched"
        if run.created and not isinstance(exc, _VerificationMismatch):
            try:
                drop_database(target)
                return f"{record.target_db} was created for this restore and has been removed"
            except (BackupbotError, psycopg.Error):
                log.exception("could not drop %s after a failed restore", record.target_db)
                return f"{record.target_db} is partially restored; drop it by hand"
        safety = (
            f"; its previous state is in safety backup {run.safety_backup_id}"
            if run.safety_backup_id
            else ""
        )
        if isinstance(exc, _VerificationMismatch):
            return f"{record.target_db} is restored but does not match the backup{safety}"
        return f"{record.target_db} is partially restored{safety}"

    # -- helpers --------------------------------------------------------------------------

    def _db(self, name: str) -> DatabaseSettings:
        db = self._databases.get(name)
        if db is None:
            raise UsageError(f"There is no configured database named {name!r}.", RESTORE_USAGE)
        return db

    def _record(
        self,
        at: datetime,
        actor: str,
        action: str,
        outcome: str,
        database: str | None,
        record: RestoreRecord | None,
        **details: Any,
    ) -> None:
        if record is not None:
            details = {"restore_id": record.id, **details}
        self._incidents.record(
            at=at,
            actor=actor,
            action=action,
            outcome=outcome,
            database=database,
            backup_id=record.backup_id if record else None,
            details={k: v for k, v in details.items() if v is not None},
        )


class _VerificationMismatch(BackupbotError):
    def __init__(self, mismatches: list[Mismatch]) -> None:
        self.mismatches = mismatches
        shown = "; ".join(
            f"{m.table}: {m.actual if m.actual is not None else 'missing'} rows, backup has "
            f"{m.expected}"
            for m in mismatches[:5]
        )
        more = f" (and {len(mismatches) - 5} more)" if len(mismatches) > 5 else ""
        super().__init__(
            f"Verification failed: {len(mismatches)} table(s) differ from the backup: "
            f"{shown}{more}."
        )


class _SafetyBackupFailed(BackupbotError):
    pass


def _server_major(target: ConnInfo) -> int:
    """The target server's major version (via the maintenance database)."""
    with target.with_dbname("postgres").connect(autocommit=True) as conn:
        return int(conn.info.server_version) // 10000
