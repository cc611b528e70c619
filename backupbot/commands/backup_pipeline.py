"""The work of one backup: a snapshot and its row counts, pg_dump --snapshot | zstd
[| age] | sha256 into the store, verified, then the manifest. Verified: the stored copy is
read back (`backup.verify: full`, the local store, encrypted and directory dumps), or the
archive is checked on its way out and the store proves it holds those bytes (`checksums`
on S3). With `backup.jobs` > 1, pg_dump -Fd -j N --snapshot writes a private work
directory (removed however the backup ends, or by a takeover), streamed as tar.

Any failure raises, and leaves nothing in the store that looks like a good backup: the
upload is aborted before its commit, and `BackupService` deletes what a later step left.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import psycopg

from backupbot.clock import Clock
from backupbot.commands.backup_manifest import DumpFacts, build_manifest
from backupbot.commands.backup_progress import ProgressReporter
from backupbot.commands.interrupts import Stops
from backupbot.commands.restore_workdir import new_work_dir
from backupbot.errors import BackupbotError
from backupbot.settings import DatabaseSettings
from backupbot.settings.connection_advice import pitfalls, shares_snapshot
from backupbot.storage.agecheck import CHECKSUMS, FULL, Verification, verify_encrypted
from backupbot.storage.agestream import Encryption, encrypt_stream, identities_for
from backupbot.storage.artifacts import ArtifactStore, ArtifactWriter
from backupbot.storage.catalog import BackupRecord, SuccessDetails
from backupbot.storage.dirtar import TarTocLister, dump_members, tar_stream, top_directory
from backupbot.storage.dumpstream import COMPRESSION, StreamResult, compress_stream, verify_artifact
from backupbot.storage.pg_binaries import PgBinaries, find_binaries
from backupbot.storage.pg_dump import PgDump
from backupbot.storage.pg_pooling import transaction_pooled
from backupbot.storage.pg_session_watch import SessionWatch
from backupbot.storage.pg_sessions import child_application_name, with_session_settings
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.pginspect import SnapshotSession
from backupbot.storage.streamcheck import CheckingWriter

_T = TypeVar("_T")
log = logging.getLogger(__name__)


class BackupPipeline:
    """Takes, stores and verifies one backup; safe to share across threads."""

    def __init__(
        self,
        *,
        store: ArtifactStore,
        clock: Clock,
        compression_level: int,
        compression_threads: int,
        pg_bin_dirs: Sequence[Path],
        lock_wait_seconds: float,
        encryption: Encryption | None = None,
        verify: str = "checksums",
        jobs: int = 1,
        work_root: Path | None = None,
    ) -> None:
        """`jobs` > 1: a parallel directory-format dump, assembled under `work_root`."""
        self._store = store
        # On the way out, S3's checksums proving the stored bytes (`storage/streamcheck.py`)
        self._on_the_way = verify == "checksums" and store.checksums and encryption is None
        self._jobs = jobs
        self.work_root = work_root or Path(tempfile.gettempdir())
        self._clock = clock
        self._level = compression_level
        self._threads = compression_threads
        self._pg_bin_dirs = list(pg_bin_dirs)
        self._lock_wait_seconds = lock_wait_seconds
        self._encryption = encryption

    def run(
        self,
        db: DatabaseSettings,
        record: BackupRecord,
        artifact_key: str,
        manifest_key: str,
        beat: ProgressReporter,
        stops: Stops,
    ) -> SuccessDetails:
        """Dump `db` to `artifact_key`, verify it and write its manifest to `manifest_key`;
        what the catalog keeps of the verified backup."""
        conn = ConnInfo.from_url(db.url.get_secret_value())
        beat.stage("snapshot", 0)
        with self._work_dir(record.id, artifact_key) as work:
            dumped = self._dump(db, conn, artifact_key, beat, stops, work)
        streamed = dumped.out.streamed
        beat.stage("verifying", 0)
        verified = dumped.out.verified or self._verify(artifact_key, dumped, beat)
        facts = DumpFacts(
            session=dumped.session,
            pg_dump_version=dumped.binaries.version,
            streamed=streamed,
            row_counts=dumped.out.row_counts,
            prisma=dumped.out.prisma,
            schema=dumped.out.schema,
            compression_level=self._level,
            toc_entries=verified.toc_entries,
            verification=verified.method,
            store_checksum=dumped.out.store_checksum,
            encryption=None if self._encryption is None else self._encryption.manifest(),
            warnings=dumped.warnings,
            jobs=dumped.jobs,
            directory=bool(dumped.out.members),
        )
        manifest = build_manifest(db, record, conn, artifact_key, facts, self._clock.now())
        self._store.put_bytes(manifest_key, json.dumps(manifest, indent=2).encode())
        return SuccessDetails(
            artifact_key=artifact_key,
            manifest_key=manifest_key,
            location=self._store.location(artifact_key),
            raw_size=streamed.raw_size,
            stored_size=streamed.stored_size,
            sha256=streamed.sha256,
            compression=f"{COMPRESSION}-{self._level}",
            server_version=dumped.session.server.version,
            pg_dump_version=dumped.binaries.version,
            manifest=manifest,
        )

    @contextlib.contextmanager
    def _work_dir(self, backup_id: str, artifact_key: str) -> Iterator[Path | None]:
        """Where pg_dump -Fd writes (None: a custom-format stream needs none): a new
        directory named by the artifact in a 0700 one named by the backup (found by
        `remove_work_dirs` after a crash), removed however this is left."""
        if self._jobs <= 1:
            yield None
            return
        work = new_work_dir(self.work_root, backup_id)
        try:
            yield work / top_directory(artifact_key.rsplit("/", 1)[-1])
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _verify(self, artifact_key: str, dumped: _Dumped, beat: ProgressReporter) -> Verification:
        """Read the stored copy back and prove it (see `verify_artifact`, `verify_encrypted`);
        a directory-format tar's table of contents is read from the stored copy too."""
        on_bytes = lambda n: beat.tick("verifying", n)  # noqa: E731
        encryption = self._encryption
        lister = None
        if dumped.out.members:
            lister = TarTocLister(dumped.binaries, list(dumped.out.members), self.work_root)
        if encryption is None:
            verified = verify_artifact(
                self._store,
                artifact_key,
                dumped.out.streamed,
                dumped.binaries,
                expected_tables=dumped.out.row_counts,
                on_bytes=on_bytes,
                lister=lister,
            )
            return Verification(FULL, verified.toc_entries)
        identities = None
        if encryption.identity is not None:
            identities = identities_for(encryption.identity, encryption.recipients, "The backup")
        return verify_encrypted(
            self._store,
            artifact_key,
            dumped.out.streamed,
            dumped.binaries,
            recipients=len(encryption.recipients),
            identities=identities,
            expected_tables=dumped.out.row_counts,
            on_bytes=on_bytes,
            lister=lister,
        )

    def _dump(
        self,
        db: DatabaseSettings,
        conn: ConnInfo,
        artifact_key: str,
        beat: ProgressReporter,
        stops: Stops,
        work: Path | None = None,
    ) -> _Dumped:
        """pg_dump in the snapshot's transaction, compressed into the store, with the row
        counts taken in the same snapshot; through a transaction pooler without a shared
        snapshot, with the warnings naming the direct host (`settings/connection_advice.py`).
        The watch names (and, past the limit, cancels) any lock wait of the row counts or
        of pg_dump; pg_dump (-Fd -j into `work`, if given) is killed and reaped however left."""
        lock_wait = self._lock_wait_seconds
        url = db.url.get_secret_value()
        pooled = transaction_pooled(conn)  # before the session holds a pooler's connection
        with SessionWatch(
            conn, child_application_name(conn, "backup"), lock_timeout=lock_wait
        ) as watch:
            session = SnapshotSession(
                with_session_settings(
                    conn,
                    application_name=watch.name("snapshot"),
                    lock_timeout=str(max(1, round(lock_wait * 1000))),
                ),
                share=shares_snapshot(url, db.provider, pooled=pooled),
            )
            jobs = 1 if pooled else self._jobs  # a pooler: one connection, no snapshot to share
            warnings = _warnings(db, url, pooled, session, self._jobs)
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
                    directory=work,
                    jobs=jobs,
                ) as dump:
                    stops.add(dump.kill)
                    out = self._stream(
                        db, conn, session, dump, watch, pool, artifact_key, beat, binaries, work
                    )
                    return _Dumped(session, binaries, out, warnings, jobs)
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
        beat: ProgressReporter,
        binaries: PgBinaries,
        work: Path | None,
    ) -> _Streamed:
        """Stream pg_dump's output into a new artifact; commit it only once pg_dump, the
        row counts, the Prisma head and the schema fingerprint (all in the dump's snapshot)
        are in hand: anything else aborts it, so nothing half-written stays. The schema
        starts just before pg_dump (its sequences first, see `SnapshotSession.schema`),
        on the session's own thread, so an application's table lock holds it back no
        longer than pg_dump's lock wait; row counts follow it in a consistent snapshot,
        and start after pg_dump otherwise. With checks on the way out, the archive is
        proven before the commit, and the store's checksum once committed. With `work`,
        pg_dump -Fd writes there first, then the directory is streamed as tar."""
        schema_future = pool.submit(session.schema)
        counts: Future[dict[str, int]] | None = None
        if session.consistent:
            counts = pool.submit(session.row_counts)
        writer: ArtifactWriter = self._store.open_writer(artifact_key)
        checking: CheckingWriter | None = None
        if self._on_the_way and work is None:  # a tar of a directory is read back instead
            writer = checking = CheckingWriter(writer, binaries, self._store.location(artifact_key))
        members: tuple[str, ...] = ()
        try:
            with conn.client_env() as env:
                stdout = None
                if work is None:
                    stdout = dump.start(env)
                else:
                    dump.start_directory(env)
                if counts is None:
                    counts = pool.submit(session.row_counts)
                beat.stage("dumping", 0)
                if stdout is not None:
                    streamed = self._compress(stdout, writer, beat)
                dump.finish()
            if work is not None:
                members = tuple(dump_members(work, work.name))
                with tar_stream(work, work.name) as tarred:
                    streamed = self._compress(tarred, writer, beat)
            schema = _in_snapshot(schema_future, watch, db.name, self._lock_wait_seconds)
            row_counts = _in_snapshot(counts, watch, db.name, self._lock_wait_seconds)
            prisma = session.prisma_history()
            verified = None
            if checking is not None:
                toc = checking.verified(streamed, row_counts).toc_entries
                verified = Verification(CHECKSUMS, toc)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        return _Streamed(streamed, row_counts, prisma, schema, members, verified, writer.checksum)

    def _compress(
        self, stdout: IO[bytes], writer: ArtifactWriter, beat: ProgressReporter
    ) -> StreamResult:
        """pg_dump's output through zstd (and age, when backups are encrypted) into `writer`."""
        on_bytes = lambda n: beat.tick("dumping", n)  # noqa: E731
        if self._encryption is None:
            return compress_stream(
                stdout, writer, level=self._level, threads=self._threads, on_bytes=on_bytes
            )
        return encrypt_stream(
            stdout,
            writer,
            self._encryption.parsed(),
            level=self._level,
            threads=self._threads,
            on_bytes=on_bytes,
        )


def _warnings(
    db: DatabaseSettings, url: str, pooled: bool, session: SnapshotSession, jobs: int
) -> tuple[str, ...]:
    """The connection pitfalls of this backup (and `backup.jobs` not used through a
    transaction pooler), logged."""
    warnings = tuple(
        p.text
        for p in pitfalls(
            db.name, url, db.provider, pooled=pooled, export_error=session.export_error
        )
    )
    if pooled and jobs > 1:
        warnings += (
            f"backup.jobs: {jobs} was not used: through a transaction pooler pg_dump's "
            "workers cannot share one snapshot, so the dump ran with one connection "
            "(still in directory format). Connect to the direct host to dump in parallel.",
        )
    for warning in warnings:
        log.warning("backup of %s: %s", db.name, warning)
    return warnings


def _in_snapshot(future: Future[_T], watch: SessionWatch, database: str, lock_wait: float) -> _T:
    """The row counts (or schema), or a plain-words failure if reading them waited too
    long for a lock."""
    try:
        return future.result()
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
class _Streamed:
    """What pg_dump's stream left in the store, and what was read in its snapshot."""

    streamed: StreamResult
    row_counts: dict[str, int]
    prisma: dict[str, Any] | None
    schema: dict[str, Any]
    members: tuple[str, ...] = ()  # a directory-format dump's tar members
    verified: Verification | None = None  # checked on the way out (None: read it back)
    store_checksum: str | None = None  # the store's own proof (S3's composite SHA-256)


@dataclass(frozen=True)
class _Dumped:
    """What a finished dump leaves for verification and the manifest."""

    session: SnapshotSession
    binaries: PgBinaries
    out: _Streamed
    warnings: tuple[str, ...] = ()
    jobs: int = 1  # pg_dump --jobs of a directory-format dump
