"""`backup now`: take a verified backup of one configured database.

The flow, each step able to fail and leave nothing that looks good behind:
claim the database (one backup at a time) -> export a snapshot and count rows in it ->
pg_dump --snapshot | zstd | sha256 -> store -> read back and verify -> write the manifest
-> mark succeeded. Any failure aborts the upload or deletes what was stored, marks the
backup failed with a plain-language reason, and writes an incident record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from backupbot.clock import Clock
from backupbot.errors import BackupbotError, StateUnavailable, UsageError
from backupbot.settings import DatabaseSettings
from backupbot.storage.artifacts import ArtifactStore
from backupbot.storage.catalog import SUCCEEDED, BackupCatalog, BackupRecord, SuccessDetails
from backupbot.storage.dumpstream import (
    COMPRESSION,
    EXTENSION,
    StreamResult,
    compress_stream,
    verify_artifact,
)
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.liveness import (
    HEARTBEAT_SECONDS,
    STALE_AFTER,
    owner_is_dead,
    process_identity,
)
from backupbot.storage.pg_binaries import PgBinaries, find_binaries
from backupbot.storage.pg_dump import PgDump
from backupbot.storage.pg_session_watch import SessionWatch
from backupbot.storage.pg_sessions import child_application_name, with_session_settings
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.pginspect import SnapshotSession

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "backupbot-manifest/1"
OUTCOME_RETRY_SECONDS = 300.0  # how long a finished backup waits for the state database
MAX_LABEL = 200


@dataclass(frozen=True)
class Progress:
    """What a running backup reports: the stage and how many bytes it has handled."""

    backup_id: str
    database: str
    stage: str  # "snapshot" | "dumping" | "verifying"
    bytes_done: int


ProgressListener = Callable[[Progress], None]


def artifact_keys(database: str, started_at: datetime, backup_id: str) -> tuple[str, str]:
    """`<database>/<UTC timestamp>-<id>.dump.zst` and its manifest beside it."""
    stem = f"{database}/{started_at.strftime('%Y%m%dT%H%M%SZ')}-{backup_id}"
    return stem + EXTENSION, stem + ".manifest.json"


def restore_command(artifact_name: str) -> str:
    return f"zstd -dc {artifact_name} | pg_restore --no-owner --no-acl -d TARGET_DB"


def validate_label(label: str | None) -> str | None:
    if label is None:
        return None
    label = label.strip()
    if not label:
        raise UsageError("--label needs some text, e.g. --label pre-deploy.")
    if len(label) > MAX_LABEL or any(ord(c) < 32 for c in label):
        raise UsageError(f"A label must be one line of at most {MAX_LABEL} characters.")
    return label


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
    ) -> None:
        """`durable_queue`: backups wait in a queue that outlives this process (PostgreSQL
        state), so a waiting backup belongs to no process until a worker claims it."""
        self._databases = {d.name: d for d in databases}
        self._catalog = catalog
        self._incidents = incidents
        self._store = store
        self._clock = clock
        self._level = compression_level
        self._threads = compression_threads
        self._pg_bin_dirs = list(pg_bin_dirs)
        self._heartbeat_seconds = heartbeat_seconds
        self._lock_wait_seconds = lock_wait_seconds
        self._adhoc: dict[str, DatabaseSettings] = {}
        self._adhoc_lock = threading.Lock()
        self._stops = _Interrupts()
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
            self._delete_quietly(*artifact_keys(r.database, r.started_at, r.id))
            taken.append(self._catalog.get(r.id))
        return taken

    def fail_unqueued(self, record: BackupRecord, exc: BaseException) -> BackupRecord:
        """The queue refused the backup `start` recorded: fail it, so it does not wait."""
        message = "The backup could not be queued for a worker; nothing was started."
        try:
            return self._record_failure(
                record, *artifact_keys(record.database, record.started_at, record.id), message, exc
            )
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
        artifact_key, manifest_key = artifact_keys(db.name, record.started_at, record.id)
        beat = _Heartbeat(self, record, on_progress, self._heartbeat_seconds)
        try:
            with (
                self._stops.scope(record.id) as stops,
                _Pulse(self._catalog, record.id, self._clock),
            ):
                details = self._execute(db, record, artifact_key, manifest_key, beat, stops)
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

    # -- the work -------------------------------------------------------------------------

    def _execute(
        self,
        db: DatabaseSettings,
        record: BackupRecord,
        artifact_key: str,
        manifest_key: str,
        beat: _Heartbeat,
        stops: _Stops,
    ) -> SuccessDetails:
        conn = ConnInfo.from_url(db.url.get_secret_value())
        beat.stage("snapshot", 0)
        dumped = self._dump(db, conn, artifact_key, beat, stops)
        session, binaries, streamed = dumped.session, dumped.binaries, dumped.streamed
        row_counts, prisma = dumped.row_counts, dumped.prisma
        beat.stage("verifying", 0)
        verified = verify_artifact(
            self._store,
            artifact_key,
            streamed,
            binaries,
            expected_tables=row_counts,
            on_bytes=lambda n: beat.tick("verifying", n),
        )
        finished = self._clock.now()
        manifest = self._manifest(
            db,
            record,
            conn,
            session,
            binaries.version,
            streamed,
            row_counts,
            prisma,
            artifact_key,
            finished,
            verified.toc_entries,
        )
        self._store.put_bytes(manifest_key, json.dumps(manifest, indent=2).encode())
        return SuccessDetails(
            artifact_key=artifact_key,
            manifest_key=manifest_key,
            location=self._store.location(artifact_key),
            raw_size=streamed.raw_size,
            stored_size=streamed.stored_size,
            sha256=streamed.sha256,
            compression=f"{COMPRESSION}-{self._level}",
            server_version=session.server.version,
            pg_dump_version=binaries.version,
            manifest=manifest,
        )

    def _dump(
        self,
        db: DatabaseSettings,
        conn: ConnInfo,
        artifact_key: str,
        beat: _Heartbeat,
        stops: _Stops,
    ) -> _Dumped:
        """pg_dump in the snapshot's transaction, compressed into the store, with the row
        counts taken in the same snapshot. The watch names (and, past the limit, cancels)
        any lock wait of the row counts or of pg_dump; pg_dump is killed and reaped however
        this is left."""
        lock_wait = self._lock_wait_seconds
        with SessionWatch(
            conn, child_application_name(conn, "backup"), lock_timeout=lock_wait
        ) as watch:
            session = SnapshotSession(
                with_session_settings(
                    conn,
                    application_name=watch.name("snapshot"),
                    lock_timeout=str(max(1, round(lock_wait * 1000))),
                )
            )
            stops.add(session.interrupt)
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rowcount")
            try:
                binaries = find_binaries(session.server.major, self._pg_bin_dirs)
                with PgDump(
                    binaries,
                    conn,
                    snapshot=session.snapshot,
                    lock_wait_seconds=lock_wait,
                    watch=watch,
                ) as dump:
                    stops.add(dump.kill)
                    streamed, row_counts, prisma = self._stream(
                        db, conn, session, dump, watch, pool, artifact_key, beat
                    )
                    return _Dumped(session, binaries, streamed, row_counts, prisma)
            except BaseException:
                session.interrupt()  # a row count still waiting must not hold up the failure
                raise
            finally:
                pool.shutdown(wait=True)
                session.close()

    def _stream(
        self,
        db: DatabaseSettings,
        conn: ConnInfo,
        session: SnapshotSession,
        dump: PgDump,
        watch: SessionWatch,
        pool: ThreadPoolExecutor,
        artifact_key: str,
        beat: _Heartbeat,
    ) -> tuple[StreamResult, dict[str, int], dict[str, Any] | None]:
        """Stream pg_dump's output into a new artifact; commit it only once pg_dump, the
        row counts and the Prisma head (all in the dump's snapshot) are in hand: anything
        else aborts it, so nothing half-written stays. Row counts start with the dump in a
        consistent snapshot, after it otherwise."""
        counts: Future[dict[str, int]] | None = None
        if session.consistent:
            counts = pool.submit(session.row_counts)
        writer = self._store.open_writer(artifact_key)
        try:
            with conn.client_env() as env:
                stdout = dump.start(env)
                if counts is None:
                    counts = pool.submit(session.row_counts)
                beat.stage("dumping", 0)
                streamed = compress_stream(
                    stdout,
                    writer,
                    level=self._level,
                    threads=self._threads,
                    on_bytes=lambda n: beat.tick("dumping", n),
                )
                dump.finish()
            row_counts = _row_counts(counts, watch, db.name, self._lock_wait_seconds)
            prisma = session.prisma_head()
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        return streamed, row_counts, prisma

    def _manifest(
        self,
        db: DatabaseSettings,
        record: BackupRecord,
        conn: ConnInfo,
        session: SnapshotSession,
        pg_dump_version: str,
        streamed: StreamResult,
        row_counts: dict[str, int],
        prisma: dict[str, Any] | None,
        artifact_key: str,
        finished: datetime,
        toc_entries: int,
    ) -> dict[str, Any]:
        name = artifact_key.rsplit("/", 1)[-1]
        return {
            "format": MANIFEST_FORMAT,
            "backup_id": record.id,
            "database": db.name,
            "provider": db.provider,
            "source": {"host": conn.host, "port": conn.port, "dbname": conn.dbname},
            "label": record.label,
            "requested_by": record.actor,
            "started_at": record.started_at.isoformat(),
            "finished_at": finished.isoformat(),
            "server_version": session.server.version,
            "server_version_num": session.server.version_num,
            "pg_dump_version": pg_dump_version,
            "artifact": name,
            "archive_format": "pg_dump custom format (--format=custom --compress=0)",
            "compression": COMPRESSION,
            "compression_level": self._level,
            "raw_size": streamed.raw_size,
            "stored_size": streamed.stored_size,
            "sha256": streamed.sha256,
            "row_counts": row_counts,
            "row_counts_snapshot": "same as dump" if session.consistent else "separate",
            "prisma_migration": prisma,
            "verified": {
                "sha256": True,
                "zstd_checksum": True,
                "pg_restore_list": True,
                "toc_entries": toc_entries,
                "at": finished.isoformat(),
            },
            "restore_command": restore_command(name),
        }

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


def _row_counts(
    counts: Future[dict[str, int]], watch: SessionWatch, database: str, lock_wait: float
) -> dict[str, int]:
    """The row counts, or a plain-words failure if counting waited too long for a lock."""
    try:
        return counts.result()
    except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled):
        wait = watch.wait
        if wait is None:
            raise
        raise BackupbotError(
            f"Counting the rows of {wait.what} in {database} waited more than "
            f"{lock_wait:g} s (backup.lock_wait_seconds) for a lock: {wait.blocked_by()}. "
            "Nothing was stored; run the backup again once that session has finished."
        ) from None


@dataclass(frozen=True)
class _Dumped:
    """What a finished dump leaves for verification and the manifest."""

    session: SnapshotSession
    binaries: PgBinaries
    streamed: StreamResult
    row_counts: dict[str, int]
    prisma: dict[str, Any] | None


class _Stops:
    """What stops one running backup: each callback runs once, when it is interrupted (at
    once, if it is added after that)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.interrupted = False

    def add(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if not self.interrupted:
                self._callbacks.append(callback)
                return
        callback()

    def interrupt(self) -> None:
        with self._lock:
            self.interrupted = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("stopping a backup step failed")


class _Interrupts:
    """The running backups' `_Stops`, so a shutdown can stop them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, _Stops] = {}
        self.stopping = False

    @contextlib.contextmanager
    def scope(self, backup_id: str) -> Iterator[_Stops]:
        stops = _Stops()
        with self._lock:
            self._running[backup_id] = stops
            stopping = self.stopping
        if stopping:
            stops.interrupt()
        try:
            yield stops
        finally:
            with self._lock:
                self._running.pop(backup_id, None)

    def interrupt_all(self) -> None:
        with self._lock:
            self.stopping = True
            running = list(self._running.values())
        for stops in running:
            stops.interrupt()


class _Pulse:
    """While a backup runs, refresh its heartbeat every `HEARTBEAT_SECONDS`: the owner is
    alive. A failed write (the state database restarting) is logged and retried at the
    next beat; the backup goes on."""

    def __init__(self, catalog: BackupCatalog, backup_id: str, clock: Clock) -> None:
        self._catalog = catalog
        self._id = backup_id
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pulse-{backup_id}", daemon=True)

    def __enter__(self) -> _Pulse:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self._catalog.pulse([self._id], self._clock.now())
            except Exception:
                log.warning("could not record the heartbeat of backup %s", self._id)


class _Heartbeat:
    """Throttles progress: the recorded stage and bytes and the listener fire at most every
    `interval` seconds of process time, plus once at every stage change."""

    def __init__(
        self,
        service: BackupService,
        record: BackupRecord,
        listener: ProgressListener,
        interval: float,
    ) -> None:
        self._service = service
        self._record = record
        self._listener = listener
        self._interval = interval
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def stage(self, stage: str, done: int) -> None:
        self._emit(stage, done)

    def tick(self, stage: str, done: int) -> None:
        if time.monotonic() - self._last >= self._interval:
            self._emit(stage, done)

    def _emit(self, stage: str, done: int) -> None:
        with self._lock:
            self._last = time.monotonic()
        try:
            self._service._catalog.progress(self._record.id, stage, done)
        except Exception:  # the state database is away: the backup goes on
            log.warning("could not record the progress of backup %s", self._record.id)
        try:
            self._listener(Progress(self._record.id, self._record.database, stage, done))
        except Exception:
            log.exception("progress listener failed; the backup goes on")
