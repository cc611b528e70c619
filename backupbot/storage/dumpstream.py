"""Streaming an archive into a store through zstd and SHA-256, and reading it back to verify.

Nothing touches a temporary file: bytes flow from pg_dump's stdout through a multi-threaded
zstd compressor and a hash into the store's writer. Verification reads the stored object
back, re-hashes it, decompresses it completely (zstd checks its own content checksum) and
hands the archive to `pg_restore --list`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO

import zstandard

from backupbot.errors import NotFound, VerificationFailed
from backupbot.storage.artifacts import ArtifactStore, ArtifactWriter
from backupbot.storage.pgtools import PgBinaries, PgRestoreList, toc_tables_with_data

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


def hash_chunks(chunks: Iterable[bytes]) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    for chunk in chunks:
        h.update(chunk)
        size += len(chunk)
    return size, h.hexdigest()


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
    stored = raw = 0
    dobj = zstandard.ZstdDecompressor().decompressobj()
    lister = PgRestoreList(binaries)
    sink: IO[bytes] | None = lister.start()
    where = store.location(key)
    try:
        for chunk in store.read_chunks(key):
            hasher.update(chunk)
            stored += len(chunk)
            try:
                data = dobj.decompress(chunk)
            except zstandard.ZstdError as exc:
                raise VerificationFailed(
                    f"The stored backup at {where} is corrupt (zstd: {exc}). It was not kept."
                ) from None
            raw += len(data)
            on_bytes(stored)
            if sink is not None and data:
                try:
                    sink.write(data)
                except BrokenPipeError:
                    sink = None  # pg_restore --list has read the whole table of contents
        if not dobj.eof:
            raise VerificationFailed(f"The stored backup at {where} is truncated. It was not kept.")
    except NotFound:
        raise VerificationFailed(
            f"The backup vanished from {where} right after it was written. It was not kept."
        ) from None
    finally:
        toc_or_error: str | Exception
        try:
            toc_or_error = lister.finish()
        except Exception as exc:  # reported below, after the byte checks
            toc_or_error = exc
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
