"""Streaming an archive into a store through zstd and SHA-256, and reading it back to verify.

Nothing touches a temporary file: bytes flow from pg_dump's stdout through a multi-threaded
zstd compressor and a hash into the store's writer. Verification reads the stored object
back, re-hashes it, decompresses it completely (zstd checks its own content checksum) and
hands the archive to `pg_restore --list`.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import zstandard

from backupbot.errors import BackupbotError, NotFound, StoreError, VerificationFailed
from backupbot.storage.artifacts import ArtifactStore, ArtifactWriter
from backupbot.storage.bgwrite import BackgroundWriter
from backupbot.storage.pg_binaries import PgBinaries
from backupbot.storage.pg_restore import PgRestoreList, toc_tables_with_data

CHUNK = 1 << 20
_SLICE = 256 << 10  # zstd input per call when unpacking for a restore
COMPRESSION = "zstd"
EXTENSION = ".dump.zst"


@dataclass(frozen=True)
class StreamResult:
    raw_size: int
    stored_size: int
    sha256: str


@dataclass(frozen=True)
class VerifyResult:
    toc_entries: int
    tables_with_data: int


class HashingSink:
    """What the compressor writes into: counts, hashes and forwards to the store."""

    def __init__(self, writer: ArtifactWriter) -> None:
        self._writer = writer
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self._writer.write(data)
        return len(data)

    def flush(self) -> None:
        pass


def compress_stream(
    source: IO[bytes],
    writer: ArtifactWriter,
    *,
    level: int = 3,
    threads: int = 0,
    on_bytes: Callable[[int], None] = lambda _n: None,
) -> StreamResult:
    """Copy `source` to `writer` as one zstd frame; `threads=0` uses every CPU."""
    cctx = zstandard.ZstdCompressor(
        level=level, threads=threads or -1, write_checksum=True, write_content_size=False
    )
    sink = HashingSink(writer)
    raw = 0
    with cctx.stream_writer(sink, closefd=False) as zw:  # type: ignore[arg-type]
        while chunk := source.read(CHUNK):
            zw.write(chunk)
            raw += len(chunk)
            on_bytes(raw)
    return StreamResult(raw_size=raw, stored_size=sink.size, sha256=sink.hash.hexdigest())


@dataclass(frozen=True)
class ReadBack:
    """What reading a stored artifact through saw: its size and SHA-256, and the bytes
    the work on its chunks produced (the decompressed size)."""

    stored: int
    sha256: str
    produced: int


def _read_through(
    chunks: Iterable[bytes],
    work: Callable[[bytes], int],
    on_bytes: Callable[[int], None],
    thread_name: str,
) -> ReadBack:
    """Hash and count `chunks` in this thread while `work` handles each one in a worker,
    a chunk behind (both release the GIL, so they overlap). `work` returns how many bytes
    it produced. However this is left, the last `work` has finished."""
    hasher = hashlib.sha256()
    stored = produced = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name) as pool:
        pending: Future[int] | None = None
        try:
            for chunk in chunks:
                if pending is not None:
                    produced += pending.result()
                pending = pool.submit(work, chunk)
                hasher.update(chunk)
                stored += len(chunk)
                on_bytes(stored)
            if pending is not None:
                produced += pending.result()
                pending = None
        finally:
            if pending is not None:  # a failure: let the work stop before anything closes
                with contextlib.suppress(Exception):
                    pending.result()
    return ReadBack(stored=stored, sha256=hasher.hexdigest(), produced=produced)


class TocLister(Protocol):
    """Reads an archive written to `start()`'s stream; `finish` gives its table of
    contents (`PgRestoreList`; `dirtar.TarTocLister` for a directory-format tar)."""

    def start(self) -> IO[bytes]: ...

    def finish(self) -> str: ...


class TocUnpacker:
    """Decompresses the stored artifact and feeds the archive to `pg_restore --list`."""

    def __init__(self, lister: TocLister, where: str) -> None:
        self._dobj = zstandard.ZstdDecompressor().decompressobj()
        self._lister = lister
        self._sink: IO[bytes] | None = lister.start()
        self._where = where

    def feed(self, chunk: bytes) -> int:
        """Decompress `chunk` into pg_restore's input; how many bytes it unpacked to."""
        try:
            data = self._dobj.decompress(chunk)
        except zstandard.ZstdError as exc:
            raise VerificationFailed(
                f"The stored backup at {self._where} is corrupt (zstd: {exc}). It was not kept."
            ) from None
        if self._sink is not None and data:
            try:
                self._sink.write(data)
            except BrokenPipeError:
                self._sink = None  # pg_restore --list has read the whole table of contents
        return len(data)

    @property
    def complete(self) -> bool:
        return bool(self._dobj.eof)

    def finish(self) -> str | Exception:
        """The table of contents, or the error pg_restore gave (reported after byte checks)."""
        try:
            return self._lister.finish()
        except Exception as exc:
            return exc


def verify_artifact(
    store: ArtifactStore,
    key: str,
    expected: StreamResult,
    binaries: PgBinaries,
    expected_tables: Iterable[str] = (),
    on_bytes: Callable[[int], None] = lambda _n: None,
    lister: TocLister | None = None,
) -> VerifyResult:
    """Read the stored artifact back and prove it is the archive that was written.

    Checks: stored size and SHA-256 equal what was streamed; the zstd frame decompresses
    completely with a valid checksum to exactly `raw_size` bytes; `pg_restore --list`
    reads the archive (or `lister`); every counted table has a TABLE DATA entry.
    """
    where = store.location(key)
    unpack = TocUnpacker(lister or PgRestoreList(binaries), where)
    try:
        read = _read_through(stored_chunks(store, key), unpack.feed, on_bytes, "verify")
    finally:
        toc_or_error = unpack.finish()
    if not unpack.complete:
        raise VerificationFailed(f"The stored backup at {where} is truncated. It was not kept.")
    check_read_back(where, read, expected)
    if isinstance(toc_or_error, Exception):
        raise VerificationFailed(
            f"pg_restore could not read the stored backup at {where}. It was not kept."
        ) from toc_or_error
    return check_toc(where, toc_or_error, expected_tables)


def stored_chunks(store: ArtifactStore, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
    """The just-written artifact at `key`, read back to verify it: a vanished or
    unreadable one is a `VerificationFailed` (the backup is not kept)."""
    try:
        yield from store.read_chunks(key, chunk_size)
    except NotFound:
        raise VerificationFailed(
            f"The backup vanished from {store.location(key)} right after it was written. "
            "It was not kept."
        ) from None
    except StoreError as exc:
        raise VerificationFailed(
            f"Could not read the stored backup back to verify it, so it was not kept: {exc}"
        ) from exc


def check_read_back(where: str, read: ReadBack, expected: StreamResult) -> None:
    """The stored bytes and what they decompress to are what was written."""
    if read.stored != expected.stored_size or read.sha256 != expected.sha256:
        raise VerificationFailed(
            f"The stored backup at {where} does not match what was written "
            f"({read.stored} bytes, sha256 {read.sha256[:12]}… instead of "
            f"{expected.stored_size} bytes, {expected.sha256[:12]}…). It was not kept; run the "
            "backup again."
        )
    if read.produced != expected.raw_size:
        raise VerificationFailed(
            f"The stored backup at {where} decompresses to {read.produced} bytes instead of "
            f"{expected.raw_size}. It was not kept; run the backup again."
        )


def check_toc(where: str, toc: str, expected_tables: Iterable[str]) -> VerifyResult:
    """Every counted table has data in the archive's table of contents `toc`."""
    with_data = toc_tables_with_data(toc)
    missing = sorted(set(expected_tables) - with_data)
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise VerificationFailed(
            f"The stored backup at {where} has no data for {len(missing)} table(s): {shown}. "
            "It was not kept."
        )
    entries = sum(1 for ln in toc.splitlines() if ln and not ln.startswith(";"))
    return VerifyResult(toc_entries=entries, tables_with_data=len(with_data))


@dataclass(frozen=True)
class Unpacked:
    path: Path
    raw_size: int
    stored_size: int
    sha256: str


def unpack_artifact(
    store: ArtifactStore,
    key: str,
    dest: Path,
    *,
    sha256: str,
    stored_size: int,
    raw_size: int,
    on_bytes: Callable[[int], None] = lambda _n: None,
) -> Unpacked:
    """Download `key`, check it is byte for byte the verified backup, and unpack the archive
    to `dest` (a seekable file, as `pg_restore -j` needs).

    Nothing is restored from a file that failed a check: on any mismatch `dest` is removed
    and `VerificationFailed` says what differed.
    """
    check_free_space(dest.parent, raw_size)
    where = store.location(key)
    dobj = zstandard.ZstdDecompressor().decompressobj(write_size=CHUNK)
    try:
        with open(dest, "wb") as out, BackgroundWriter(out) as writer:
            # read + SHA-256 here, zstd in _read_through's worker, the file write in the
            # writer's thread: three stages that overlap (each releases the GIL)
            def unpack(chunk: bytes) -> int:
                return decompress_into(dobj, chunk, writer)

            read = _read_through(store.read_chunks(key), unpack, on_bytes, "unpack")
        if read.stored != stored_size or read.sha256 != sha256:
            raise VerificationFailed(
                f"The stored backup at {where} is not the one that was verified: "
                f"{read.stored:,} bytes with SHA-256 {read.sha256[:12]}…, expected "
                f"{stored_size:,} bytes with {sha256[:12]}…. It may be corrupt or replaced; "
                "nothing was restored."
            )
        if not dobj.eof or read.produced != raw_size:
            raise VerificationFailed(
                f"The stored backup at {where} does not unpack to the archive that was "
                f"verified ({read.produced:,} of {raw_size:,} bytes). Nothing was restored."
            )
    except BaseException as exc:
        dest.unlink(missing_ok=True)
        failure = unpack_failure(exc, where, dest)
        if failure is None:
            raise
        raise failure from None
    return Unpacked(dest, read.produced, read.stored, read.sha256)


def decompress_into(
    dobj: zstandard.ZstdDecompressionObj, chunk: bytes, writer: BackgroundWriter
) -> int:
    """Decompress `chunk` into `writer`, a quarter MiB of input at a time (smaller
    outputs than one call for the whole chunk: measurably faster to allocate and write);
    how many bytes it unpacked to."""
    produced = 0
    view = memoryview(chunk)
    for start in range(0, len(view), _SLICE):
        data = dobj.decompress(view[start : start + _SLICE])
        produced += writer.write(data)
    return produced


def check_free_space(directory: Path, needed: int) -> None:
    """Refuse to unpack `needed` bytes into `directory` when its disk has less free."""
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise StoreError(
            f"Not enough disk space to unpack the backup in {directory}: it needs "
            f"{needed:,} bytes, {free:,} are free. Set restore.work_dir to a larger disk."
        )


def unpack_failure(exc: BaseException, where: str, dest: Path) -> BackupbotError | None:
    """The failure to report instead of `exc`, raised while unpacking to `dest` (None:
    report `exc` itself)."""
    if isinstance(exc, zstandard.ZstdError):
        return VerificationFailed(
            f"The stored backup at {where} is corrupt (zstd: {exc}). Nothing was restored."
        )
    if isinstance(exc, NotFound):
        return VerificationFailed(f"The backup file is missing from {where}. Nothing was restored.")
    if isinstance(exc, OSError):
        return StoreError(
            f"Could not unpack the backup into {dest.parent} ({exc.strerror or exc}). Free some "
            "space or set restore.work_dir. Nothing was restored."
        )
    return None
