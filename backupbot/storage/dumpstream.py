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
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import zstandard

from backupbot.errors import NotFound, StoreError, VerificationFailed
from backupbot.storage.artifacts import ArtifactStore, ArtifactWriter
from backupbot.storage.pg_binaries import PgBinaries
from backupbot.storage.pg_restore import PgRestoreList, toc_tables_with_data

CHUNK = 1 << 20
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


class _HashingSink:
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
    sink = _HashingSink(writer)
    raw = 0
    with cctx.stream_writer(sink, closefd=False) as zw:  # type: ignore[arg-type]
        while chunk := source.read(CHUNK):
            zw.write(chunk)
            raw += len(chunk)
            on_bytes(raw)
    return StreamResult(raw_size=raw, stored_size=sink.size, sha256=sink.hash.hexdigest())


class _Unpacker:
    """Decompresses the stored artifact and feeds the archive to `pg_restore --list`."""

    def __init__(self, lister: PgRestoreList, where: str) -> None:
        self._dobj = zstandard.ZstdDecompressor().decompressobj()
        self._lister = lister
        self._sink: IO[bytes] | None = lister.start()
        self._where = where
        self.raw = 0

    def feed(self, chunk: bytes) -> None:
        try:
            data = self._dobj.decompress(chunk)
        except zstandard.ZstdError as exc:
            raise VerificationFailed(
                f"The stored backup at {self._where} is corrupt (zstd: {exc}). It was not kept."
            ) from None
        self.raw += len(data)
        if self._sink is not None and data:
            try:
                self._sink.write(data)
            except BrokenPipeError:
                self._sink = None  # pg_restore --list has read the whole table of contents

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
) -> VerifyResult:
    """Read the stored artifact back and prove it is the archive that was written.

    Checks: stored size and SHA-256 equal what was streamed; the zstd frame decompresses
    completely with a valid checksum to exactly `raw_size` bytes; `pg_restore --list`
    reads the archive; every counted table has a TABLE DATA entry.
    """
    hasher = hashlib.sha256()
    stored = 0
    where = store.location(key)
    unpack = _Unpacker(PgRestoreList(binaries), where)
    # Hashing (this thread) and decompressing (a worker) overlap; both release the GIL.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify") as pool:
        pending: Future[None] | None = None
        try:
            for chunk in store.read_chunks(key):
                if pending is not None:
                    pending.result()
                pending = pool.submit(unpack.feed, chunk)
                hasher.update(chunk)
                stored += len(chunk)
                on_bytes(stored)
            if pending is not None:
                pending.result()
        except NotFound:
            raise VerificationFailed(
                f"The backup vanished from {where} right after it was written. It was not kept."
            ) from None
        except StoreError as exc:
            raise VerificationFailed(
                f"Could not read the stored backup back to verify it, so it was not kept: {exc}"
            ) from exc
        finally:
            if pending is not None:  # let the decompressor stop before pg_restore's input closes
                with contextlib.suppress(Exception):
                    pending.result()
            toc_or_error = unpack.finish()
    raw = unpack.raw
    if not unpack.complete:
        raise VerificationFailed(f"The stored backup at {where} is truncated. It was not kept.")
    digest = hasher.hexdigest()
    if stored != expected.stored_size or digest != expected.sha256:
        raise VerificationFailed(
            f"The stored backup at {where} does not match what was written "
            f"({stored} bytes, sha256 {digest[:12]}… instead of {expected.stored_size} bytes, "
            f"{expected.sha256[:12]}…). It was not kept; run the backup again."
        )
    if raw != expected.raw_size:
        raise VerificationFailed(
            f"The stored backup at {where} decompresses to {raw} bytes instead of "
            f"{expected.raw_size}. It was not kept; run the backup again."
        )
    if isinstance(toc_or_error, Exception):
        raise VerificationFailed(
            f"pg_restore could not read the stored backup at {where}. It was not kept."
        ) from toc_or_error
    toc = toc_or_error
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
    free = shutil.disk_usage(dest.parent).free
    if free < raw_size:
        raise StoreError(
            f"Not enough disk space to unpack the backup in {dest.parent}: it needs "
            f"{raw_size:,} bytes, {free:,} are free. Set restore.work_dir to a larger disk."
        )
    where = store.location(key)
    hasher = hashlib.sha256()
    dobj = zstandard.ZstdDecompressor().decompressobj()
    stored = raw = 0
    try:
        with open(dest, "wb") as out, ThreadPoolExecutor(1, "unpack") as pool:

            def unpack(chunk: bytes) -> int:
                data = dobj.decompress(chunk)
                out.write(data)
                return len(data)

            pending: Future[int] | None = None
            for chunk in store.read_chunks(key):
                if pending is not None:
                    raw += pending.result()
                pending = pool.submit(unpack, chunk)
                hasher.update(chunk)
                stored += len(chunk)
                on_bytes(stored)
            if pending is not None:
                raw += pending.result()
        digest = hasher.hexdigest()
        if stored != stored_size or digest != sha256:
            raise VerificationFailed(
                f"The stored backup at {where} is not the one that was verified: "
                f"{stored:,} bytes with SHA-256 {digest[:12]}…, expected {stored_size:,} bytes "
                f"with {sha256[:12]}…. It may be corrupt or replaced; nothing was restored."
            )
        if not dobj.eof or raw != raw_size:
            raise VerificationFailed(
                f"The stored backup at {where} does not unpack to the archive that was "
                f"verified ({raw:,} of {raw_size:,} bytes). Nothing was restored."
            )
    except zstandard.ZstdError as exc:
        dest.unlink(missing_ok=True)
        raise VerificationFailed(
            f"The stored backup at {where} is corrupt (zstd: {exc}). Nothing was restored."
        ) from None
    except NotFound:
        dest.unlink(missing_ok=True)
        raise VerificationFailed(
            f"The backup file is missing from {where}. Nothing was restored."
        ) from None
    except OSError as exc:
        dest.unlink(missing_ok=True)
        raise StoreError(
            f"Could not unpack the backup into {dest.parent} ({exc.strerror or exc}). Free some "
            "space or set restore.work_dir. Nothing was restored."
        ) from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return Unpacked(dest, raw, stored, digest)
