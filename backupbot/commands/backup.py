"""`backup now`: take a verified backup of one configured database.

The flow, each step able to fail and leave nothing that looks good behind:
claim the database (one backup at a time) -> export a snapshot and count rows in it ->
pg_dump --snapshot | zstd | sha256 -> store -> verify (the archive on its way out and S3's
checksums, or a read-back: `backup.verify`) -> write the manifest -> mark succeeded. Any
failure aborts the upload or deletes what was stored, marks the backup failed with a
plain-language reason, and writes an incident record.

`BackupService` claims, runs and records backups; the work of one is in
`backup_pipeline.py`, its progress and heartbeat in `backup_progress.py`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

from backupbot.clock import Clock
from backupbot.commands.backup_naming import artifact_keys, validate_label
from backupbot.commands.backup_pipeline import BackupPipeline
from backupbot.commands.backup_progress import ProgressListener, ProgressReporter, Pulse
from backupbot.commands.interrupts import Interrupts
from backupbot.commands.restore_workdir import remove_work_dirs
from backupbot.errors import BackupbotError, StateUnavailable, UsageError
from backupbot.settings import DatabaseSettings
from backupbot.storage.agestream import SUFFIX, Encryption
from backupbot.storage.artifacts import ArtifactStore
from backupbot.storage.catalog import SUCCEEDED, BackupCatalog, BackupRecord, SuccessDetails
from backupbot.storage.dirtar import TAR_EXTENSION
from backupbot.storage.dumpstream import EXTENSION
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.liveness import STALE_AFTER, owner_is_dead, process_identity

log = logging.getLogger(__name__)

OUTCOME_RETRY_SECONDS = 300.0  # how long a finished backup waits for the state database


class BackupService:
    """Runs backups. Stateless apart from its collaborators; safe to share across threads."""

    def __init__(
        self,
        *,
        databases: Sequence[DatabaseSettings],
        catalog: BackupCatalog,
        incidents: IncidentLog,
        store: ArtifactStore,
        clock: Clock,
        compression_level: int = 3,
        compression_threads: int = 1,
        pg_bin_dirs: Sequence[Path] = (),
        heartbeat_seconds: float = 5.0,
        lock_wait_seconds: float = 60.0,
        durable_queue: bool = False,
        encryption: Encryption | None = None,
        verify: str = "checksums",
        jobs: int = 1,
        work_root: Path | None = None,
    ) -> None:
        """`durable_queue`: backups wait in a queue that outlives this process (PostgreSQL
        state), so a waiting backup belongs to no process until a worker claims it.
        `jobs` > 1: parallel directory-format dumps, assembled under `work_root`."""
        self._databases = {d.name: d for d in databases}
        self._catalog = catalog
        self._incidents = incidents
        self._store = store
        self._clock = clock
        self._pipeline = BackupPipeline(
            store=store,
            clock=clock,
            compression_level=compression_level,
            compression_threads=compression_threads,
            pg_bin_dirs=pg_bin_dirs,
            lock_wait_seconds=lock_wait_seconds,
            encryption=encryption,
            verify=verify,
            jobs=jobs,
            work_root=work_root,
        )
        self._ext = TAR_EXTENSION if jobs > 1 else EXTENSION
        self._suffix = "" if encryption is None else SUFFIX
        self._heartbeat_seconds = heartbeat_seconds
        self._adhoc: dict[str, DatabaseSettings] = {}
        self._adhoc_lock = threading.Lock()
        self._stops = Interrupts()
        self._durable_queue = durable_queue

    def start(
        self,
        database: str,
        actor: str,
        label: str | None = None,
        *,
        source: DatabaseSettings | None = None,
    ) -> BackupRecord:
        """Claim the database and record the start; raises `BackupAlreadyRunning` if busy.

        `source` backs up a database that is not configured (a restore's target, before it
        is overwritten) under the catalog name `database`.
        """
        now = self._clock.now()
        try:
            label = validate_label(label)
            if source is None and database not in self._databases:
                raise UsageError(f"There is no configured database named {database!r}.")
        except UsageError as exc:  # refused before anything started: recorded all the same
            self._incidents.record(
                at=now,
                actor=actor,
                action="command.rejected",
                outcome="refused",
                details={"command": "backup now", **exc.refusal()},
            )
            exc.recorded = True  # see commands/refusals.py
            raise
        self.take_over_abandoned(database)
        try:
            with self._incidents.atomic():
                owner = None if self._durable_queue else process_identity()
                record = self._catalog.start(
                    database, actor, label, self._store.kind, now, owner=owner
                )
                self._incidents.record(
                    at=now,
                    actor=actor,
                    action="backup.started",
                    outcome="ok",
                    database=database,
                    backup_id=record.id,
                    details={"label": label, "store": self._store.kind},
                )
        except BackupbotError as exc:
            self._incidents.record(
                at=now,
                actor=actor,
                action="backup.refused",
                outcome="refused",
                database=database,
                details=exc.refusal(),
            )
            exc.recorded = True  # see commands/refusals.py
            raise
        if source is not None:
            with self._adhoc_lock:
                self._adhoc[record.id] = source
        return record

    def take_over_abandoned(self, database: str | None = None) -> list[BackupRecord]:
        """Fail the running backups whose process stopped (see `storage/liveness.py`),
        record each as `backup.abandoned`, and remove what they left in the store.
        Any process may call this: `serve` at start-up and every few seconds, the CLI and
        `start` before a new backup. Returns the backups taken over."""
        now = self._clock.now()
        found = self._catalog.abandoned(
            now, stale_after=STALE_AFTER, is_dead=owner_is_dead, database=database
        )
        taken = []
        for r in found:
            message = (
                f"The bot stopped while this backup was at the {r.stage or 'start'} stage; "
                "nothing was kept. Run it again."
            )
            with self._incidents.atomic():
                if not self._catalog.take_over(r, now, message):
                    continue  # its owner beat meanwhile, or another process took it
                self._incidents.record(
                    at=now,
                    actor="system",
                    action="backup.abandoned",
                    outcome="failed",
                    database=r.database,
                    backup_id=r.id,
                    details={"error": message, "stage": r.stage, "owner": r.owner},
                )
            for ext in (EXTENSION, TAR_EXTENSION):  # whichever backup.jobs it ran with
                keys = artifact_keys(r.database, r.started_at, r.id, self._suffix, ext)
                self._delete_quietly(*keys)
            remove_work_dirs(self._pipeline.work_root, r.id)  # a parallel dump's directory
            taken.append(self._catalog.get(r.id))
        return taken

    def _keys(self, record: BackupRecord) -> tuple[str, str]:
        r = record
        return artifact_keys(r.database, r.started_at, r.id, self._suffix, self._ext)

    def fail_unqueued(self, record: BackupRecord, exc: BaseException) -> BackupRecord:
        """The queue refused the backup `start` recorded: fail it, so it does not wait."""
        message = "The backup could not be queued for a worker; nothing was started."
        try:
            return self._record_failure(record, *self._keys(record), message, exc)
        except BackupbotError:
            log.exception("could not record that backup %s was not queued", record.id)
            return record

    def adopt_queued(self) -> list[BackupRecord]:
        """Backups a stopped in-process queue still held: make them this process's, to be
        queued again (see `storage/job_queue.py`)."""
        adopted = []
        for r in self._catalog.queued():
            mine_now = r.owner is None or owner_is_dead(r.owner)
            if mine_now and self._catalog.adopt(r, process_identity()):
                adopted.append(self._catalog.get(r.id))
        return adopted

    def interrupt_all(self) -> None:
        """Stop every running backup now (the bot is shutting down): pg_dump is killed,
        the snapshot session's query cancelled, and each backup fails as interrupted,
        leaving nothing stored. Backups that start afterwards are interrupted at once."""
        self._stops.interrupt_all()

    def run(
        self, record: BackupRecord, on_progress: ProgressListener = lambda _p: None
    ) -> BackupRecord:
        """Do the backup `start` queued, once this process has claimed it. Never raises
        for expected failures: the returned record says `succeeded` or `failed` with a
        plain-language `error`. A backup no longer waiting (taken over, or run by another
        worker) is left alone and returned as it stands."""
        if not self._catalog.claim(record.id, process_identity(), self._clock.now()):
            log.warning("backup %s is not waiting any more; not running it", record.id)
            return self._catalog.get(record.id)
        with self._adhoc_lock:
            db = self._adhoc.pop(record.id, None) or self._databases[record.database]
        artifact_key, manifest_key = self._keys(record)
        beat = ProgressReporter(self._catalog, record, on_progress, self._heartbeat_seconds)
        try:
            with (
                self._stops.scope(record.id) as stops,
                Pulse(self._catalog, record.id, self._clock),
            ):
                details = self._pipeline.run(db, record, artifact_key, manifest_key, beat, stops)
        except Exception as exc:
            message = self._explain(record, exc)
            return self._durably(
                record, self._record_failure, record, artifact_key, manifest_key, message, exc
            )
        except BaseException as exc:  # Ctrl-C or shutdown: record it, then let it propagate
            message = "The backup was interrupted (the bot or CLI was stopped); nothing was kept."
            self._durably(
                record, self._record_failure, record, artifact_key, manifest_key, message, exc
            )
            raise
        return self._durably(
            record, self._succeeded, record, db, artifact_key, manifest_key, details
        )

    def _durably(
        self, record: BackupRecord, step: Callable[..., BackupRecord], *args: Any
    ) -> BackupRecord:
        """Record the outcome even if the state database is away right now: retry with
        backoff for up to `OUTCOME_RETRY_SECONDS` (the heartbeat keeps the backup from
        being taken over meanwhile), then give up loudly. Each attempt is one transaction,
        so a retry never records twice."""
        deadline = time.monotonic() + OUTCOME_RETRY_SECONDS
        delay, pause = 0.5, threading.Event()
        while True:
            try:
                return step(*args)
            except StateUnavailable:
                if time.monotonic() + delay > deadline:
                    log.error("could not record the outcome of backup %s: giving up", record.id)
                    raise
                log.warning(
                    "the state database is unavailable; recording the outcome of backup %s "
                    "again in %.1f s",
                    record.id,
                    delay,
                )
                pause.wait(delay)
                delay = min(delay * 2, 10.0)

    def _explain(self, record: BackupRecord, exc: Exception) -> str:
        """The failure `exc` of `record` in plain words."""
        if self._stops.stopping:
            return (
                "The backup was interrupted: the bot was stopped while it ran. Nothing was "
                "kept; run it again once the bot is back."
            )
        if isinstance(exc, BackupbotError):
            return str(exc)
        if isinstance(exc, psycopg.OperationalError):
            return (
                f"The connection to {record.database}'s database server was lost during the "
                "backup (server restart or network drop); nothing was kept. Run it again."
            )
        log.error("backup %s crashed", record.id, exc_info=exc)
        return (
            "An internal error stopped the backup; nothing was kept. The bot's log has "
            "the details (search for the backup id)."
        )

    def _succeeded(
        self,
        record: BackupRecord,
        db: DatabaseSettings,
        artifact_key: str,
        manifest_key: str,
        details: SuccessDetails,
    ) -> BackupRecord:
        """Mark the verified backup succeeded and record it, unless it was failed meanwhile."""
        now = self._clock.now()
        with self._incidents.atomic():
            kept = self._catalog.succeed(record.id, now, details)
            if kept:
                self._incidents.record(
                    at=now,
                    actor=record.actor,
                    action="backup.succeeded",
                    outcome="ok",
                    database=db.name,
                    backup_id=record.id,
                    details={
                        "location": details.location,
                        "stored_size": details.stored_size,
                        "raw_size": details.raw_size,
                        "sha256": details.sha256,
                        "duration_seconds": round((now - record.started_at).total_seconds(), 1),
                        "label": record.label,
                        "verification": details.manifest.get("verified", {}).get("method"),
                        "encrypted": details.manifest.get("encryption") is not None,
                        "warnings": details.manifest.get("connection_warnings", []),
                    },
                )
        current = self._catalog.get(record.id)
        if not kept and not (current.status == SUCCEEDED and current.sha256 == details.sha256):
            # Someone marked it failed meanwhile (e.g. declared abandoned): do not keep it.
            # (Succeeded with this artifact: an earlier attempt's commit landed after all.)
            self._delete_quietly(artifact_key, manifest_key)
        return current

    def backup_now(
        self,
        database: str,
        actor: str,
        label: str | None = None,
        on_progress: ProgressListener = lambda _p: None,
    ) -> BackupRecord:
        return self.run(self.start(database, actor, label), on_progress)

    def _record_failure(
        self,
        record: BackupRecord,
        artifact_key: str,
        manifest_key: str,
        message: str,
        exc: BaseException,
    ) -> BackupRecord:
        log.warning(
            "backup %s of %s failed: %s",
            record.id,
            record.database,
            message,
            extra={"detail": getattr(exc, "stderr", None) or getattr(exc, "detail", None)},
        )
        self._delete_quietly(artifact_key, manifest_key)
        now = self._clock.now()
        with self._incidents.atomic():
            if self._catalog.fail(record.id, now, message):
                self._incidents.record(
                    at=now,
                    actor=record.actor,
                    action="backup.failed",
                    outcome="failed",
                    database=record.database,
                    backup_id=record.id,
                    details={"error": message, "error_type": type(exc).__name__},
                )
        return self._catalog.get(record.id)

    def _delete_quietly(self, *keys: str) -> None:
        for key in keys:
            try:
                self._store.discard(key)
            except BackupbotError:
                log.exception("could not remove %s after a failed backup", key)
