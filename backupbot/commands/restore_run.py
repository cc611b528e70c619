"""Executing an approved restore, stage by stage, and proving the result.

download the artifact and check its SHA-256 while unpacking it (nothing is restored before
this passes; meanwhile the target is inspected and created if missing, dropped again if the
download fails) -> safety backup of a target that has tables (label `pre-restore`) ->
`pg_restore --exit-on-error [-j N] [--clean --if-exists]` -> count every table's rows and
compare them, and the schema (`schema_compare.py`), with the manifest -> timings against
the RTO. A failure at any stage says what state the target
is in.

`RestoreRunner` runs the stages; how a restore ended is recorded by `RestoreOutcomes`
(`restore_outcome.py`); the vocabulary shared with requests and drills is in
`restore_model.py`.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from backupbot.clock import Clock
from backupbot.commands.backup import BackupService
from backupbot.commands.interrupts import KillSwitches
from backupbot.commands.migrations import restore_facts
from backupbot.commands.provider_run import ProviderRunner
from backupbot.commands.restore_model import (
    BOT_ACTOR,
    RESTORE_USAGE,
    SAFETY_LABEL,
    ProgressListener,
    RestoreProgress,
    record_incident,
    rto_minutes,
)
from backupbot.commands.restore_outcome import (
    RestoreOutcomes,
    RunState,
    _SafetyBackupFailed,
    _VerificationMismatch,
    compare_counts,
)
from backupbot.commands.restore_prep import TargetPrep
from backupbot.commands.restore_targets import Targets
from backupbot.commands.restore_workdir import new_work_dir, remove_in_background, work_root
from backupbot.commands.schema_compare import (
    NOT_RECORDED,
    SchemaCheck,
    check_schema,
    recorded_schema,
)
from backupbot.errors import UsageError, VerificationFailed
from backupbot.settings import DatabaseSettings, RestoreSettings
from backupbot.storage.agecheck import unpack_backup
from backupbot.storage.artifacts import ArtifactStore
from backupbot.storage.catalog import SUCCEEDED, BackupCatalog, BackupRecord
from backupbot.storage.dumpstream import Unpacked, check_free_space
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.liveness import process_identity
from backupbot.storage.pg_binaries import PgBinaries
from backupbot.storage.pg_restore import PgRestore
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.pginspect import count_rows
from backupbot.storage.pgschema import schema_fingerprint
from backupbot.storage.prisma import prisma_facts
from backupbot.storage.restores import RUNNING, RestoreRecord, RestoreRequests

log = logging.getLogger(__name__)

_SMALL_ARCHIVE = 8 << 20  # below this, parallel pg_restore costs more than it saves


class RestoreRunner:
    """Runs restores that `RestoreService` has moved to `running`."""

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
        settings: RestoreSettings,
        pg_bin_dirs: Sequence[Path] = (),
        heartbeat_seconds: float = 30.0,
        identity: Path | None = None,
        targets: Targets | None = None,
    ) -> None:
        """`identity`: the age identity file (backup.verify_identity) encrypted backups
        are decrypted with."""
        self._databases = {d.name: d for d in databases}
        self._catalog = catalog
        self._restores = restores
        self._incidents = incidents
        self._store = store
        self._backups = backups
        self._clock = clock
        self._settings = settings
        self._pg_bin_dirs = list(pg_bin_dirs)
        self._heartbeat_seconds = heartbeat_seconds
        self._identity = identity
        self._targets = targets or Targets()
        self._interrupts = KillSwitches()
        self._outcomes = RestoreOutcomes(restores=restores, incidents=incidents, clock=clock)
        self._provider = ProviderRunner(
            restores=restores,
            incidents=incidents,
            clock=clock,
            # the safety step of an in-place restore (a provider restore has no target conn)
            safety_dump=lambda r, db, run: self._safety_backup(r, db, ConnInfo(params={}), run),
            interrupts=self._interrupts,
        )

    def rto_minutes(self, database: str) -> int:
        return rto_minutes(self._databases, self._settings, database)

    def _db(self, name: str) -> DatabaseSettings:
        db = self._databases.get(name)
        if db is None:
            raise UsageError(f"There is no configured database named {name!r}.", RESTORE_USAGE)
        return db

    def _record(self, *args: Any, **details: Any) -> None:
        record_incident(self._incidents, *args, **details)

    def interrupt_all(self) -> None:
        """The bot is stopping: kill every running pg_restore (and any that starts
        later); each restore fails as interrupted, naming its stage and safety backup."""
        self._interrupts.interrupt_all()

    def claim(self, restore_id: str) -> bool:
        """Take a waiting restore for this process (see `RestoreRequests.claim`); False
        if another process has it or it is no longer waiting."""
        return self._restores.claim(restore_id, process_identity(), self._clock.now())

    def execute(
        self,
        restore_id: str,
        on_progress: ProgressListener = lambda _p: None,
        *,
        claimed: bool = False,
    ) -> RestoreRecord:
        """Run an approved restore, claiming it first unless the caller has (`claimed`).
        Never raises for expected failures: the returned record says `succeeded` or
        `failed`, with `result['target_state']` on failure. A restore another process
        has is left alone and returned as it stands."""
        record = self._restores.get(restore_id)
        if record.status != RUNNING:
            return record
        if not claimed and not self.claim(restore_id):
            log.warning("restore %s is not waiting any more; not running it", restore_id)
            return self._restores.get(restore_id)
        db = self._db(record.database)
        if record.is_provider:
            return self._provider_restore(record, db, on_progress)
        backup = self._catalog.get(record.backup_id)
        run = RunState()
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
        work = None
        beating = threading.Event()
        threading.Thread(
            target=self._beat, args=(record.id, beating), name=f"heartbeat-{record.id}", daemon=True
        ).start()
        target = ConnInfo.from_url(db.url.get_secret_value()).with_dbname(record.target_db)
        try:
            target = self._targets.conn(db, record.target_name, record.target_db)
            work = new_work_dir(work_root(self._settings), record.id)
            result = self._execute(record, db, backup, target, work, run, started, on_progress)
        except BaseException as exc:
            return self._outcomes.failed(
                record, run, started, exc, target, stopping=self._interrupts.stopping
            )
        finally:
            beating.set()
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)
        return result

    def _provider_restore(
        self, record: RestoreRecord, db: DatabaseSettings, on_progress: ProgressListener
    ) -> RestoreRecord:
        """A restore through the database's provider (`provider_run.py`), heartbeating."""
        beating = threading.Event()
        threading.Thread(
            target=self._beat, args=(record.id, beating), name=f"heartbeat-{record.id}", daemon=True
        ).start()
        try:
            return self._provider.execute(record, db, on_progress)
        finally:
            beating.set()

    def _beat(self, restore_id: str, stop: threading.Event) -> None:
        """Keep the heartbeat fresh through long stages (a multi-hour pg_restore), so the
        restore is not mistaken for one whose process died."""
        while not stop.wait(self._heartbeat_seconds):
            try:
                self._restores.heartbeat(restore_id, self._clock.now())
            except Exception:
                log.exception("could not record the heartbeat of restore %s", restore_id)

    def _stage(
        self, record: RestoreRecord, run: RunState, stage: str, listener: ProgressListener
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
        run: RunState,
        started: float,
        listener: ProgressListener,
    ) -> RestoreRecord:
        """The stages in order: download and check (and create), safety backup,
        pg_restore, verify; each is timed into `run` and reported to `listener`."""
        if not (backup.artifact_key and backup.sha256 and backup.stored_size and backup.raw_size):
            raise VerificationFailed(f"Backup {backup.id} has no stored artifact to restore.")
        # 1. The artifact, checked byte for byte, before anything is touched; meanwhile
        # the target is inspected and, if it does not exist, created (`restore_prep.py`).
        t = self._stage(record, run, "download", listener)
        check_free_space(work, backup.raw_size)  # before the target is created
        prep = TargetPrep(target, self._pg_bin_dirs, run, record.id).start()
        try:
            archive = unpack_backup(self._store, backup, work / "archive.dump", self._identity)
        finally:
            prep.wait()  # run.created says whether the target was created meanwhile
        run.timings["download"] = time.monotonic() - t
        ready = prep.result()
        facts, binaries = ready.facts, ready.binaries
        if ready.create_seconds is not None:  # 3. the target, created during the download
            run.timings["create"] = ready.create_seconds
            run.overlapped.append("create")
        # 2. A safety backup of whatever the restore would overwrite.
        if facts.has_data:
            t = self._stage(record, run, "safety", listener)
            self._safety_backup(record, db, target, run)
            run.timings["safety"] = time.monotonic() - t
        # 4. pg_restore.
        t = self._stage(record, run, "restore", listener)
        run.touched = True
        self._pg_restore(record, binaries, target, archive, clean=facts.has_data)
        run.timings["restore"] = time.monotonic() - t
        # 5. Verification against the manifest (the archive is removed meanwhile).
        t = self._stage(record, run, "verify", listener)
        removing = remove_in_background(work)
        expected: dict[str, int] = (backup.manifest or {}).get("row_counts") or {}
        try:
            actual, schema, prisma = self._verify(record, target, backup.manifest, expected)
        finally:  # a failed verification is timed too
            run.timings["verify"] = time.monotonic() - t
            removing.join()
        return self._outcomes.succeeded(
            record,
            run,
            started,
            expected,
            actual,
            schema=schema,
            prisma=restore_facts(facts.prisma, prisma) if facts.prisma or prisma else None,
            rto=self.rto_minutes(record.database),
            jobs=self._jobs(archive.raw_size),
        )

    def _pg_restore(
        self,
        record: RestoreRecord,
        binaries: PgBinaries,
        target: ConnInfo,
        archive: Unpacked,
        *,
        clean: bool,
    ) -> None:
        """pg_restore into the target; stopped and reaped however this is left."""
        with (
            PgRestore(
                binaries,
                target,
                archive.path,
                jobs=self._jobs(archive.raw_size),
                clean=clean,
                no_owner=self._settings.no_owner,
                no_acl=self._settings.no_acl,
                lock_timeout_seconds=self._settings.lock_timeout_seconds,
                statement_timeout_seconds=self._settings.statement_timeout_seconds,
                timeout_seconds=self._settings.timeout_minutes * 60,
                job_id=record.id,  # so a takeover can end an orphan's sessions
            ) as restore,
            self._interrupts.running(record.id, restore.kill),
        ):
            restore.run()

    def _verify(
        self,
        record: RestoreRecord,
        target: ConnInfo,
        manifest: dict[str, Any] | None,
        expected: dict[str, int],
    ) -> tuple[dict[str, int], SchemaCheck, dict[str, Any] | None]:
        """Row counts and schema of the restored target, compared with the manifest's and
        recorded, and its Prisma history; raises `_VerificationMismatch` when any table or
        schema object differs."""
        recorded, why_not = recorded_schema(manifest)
        with target.connect(autocommit=True) as conn:
            actual = count_rows(conn)
            prisma = prisma_facts(conn)
            fingerprint = None if recorded is None else schema_fingerprint(conn)
            target_major = conn.info.server_version // 10000
        mismatches = compare_counts(expected, actual)
        schema = SchemaCheck(NOT_RECORDED, note=why_not)
        if recorded is not None and fingerprint is not None:
            source_major = int((manifest or {}).get("server_version_num") or 0) // 10000
            schema = check_schema(
                recorded, fingerprint, source_major=source_major, target_major=target_major
            )
        self._record(
            self._clock.now(),
            BOT_ACTOR,
            "restore.verified",
            "failed" if mismatches or schema.differences else "ok",
            record.database,
            record,
            tables=len(expected),
            rows=sum(expected.values()),
            mismatches=[m.__dict__ for m in mismatches[:50]],
            **schema.record(),
        )
        if mismatches or schema.differences:
            raise _VerificationMismatch(mismatches, schema.differences)
        return actual, schema, prisma

    def _safety_backup(
        self, record: RestoreRecord, db: DatabaseSettings, target: ConnInfo, run: RunState
    ) -> None:
        if record.mode == "in_place":
            started = self._backups.start(db.name, BOT_ACTOR, SAFETY_LABEL)
        else:  # catalogued under the target's name (a `targets:` entry, or the database)
            source = DatabaseSettings(
                name=record.target_name or record.target_db,
                url=SecretStr(self._targets.url(db, record.target_name, record.target_db)),
                provider="generic" if record.target_name else db.provider,
            )
            started = self._backups.start(source.name, BOT_ACTOR, SAFETY_LABEL, source=source)
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
