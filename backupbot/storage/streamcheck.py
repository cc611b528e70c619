"""Verifying an artifact on its way to the store (`backup.verify: checksums`).

What the full read-back proves of the archive itself, proven on the bytes as they are
written instead of on a second download: the zstd frame decompresses completely (its
content checksum valid) to exactly the bytes pg_dump wrote, and `pg_restore --list` reads
the archive, every counted table with data. That the store holds exactly these bytes is
the store's own proof (S3's SHA-256 checksums, see `s3_upload.py`); the artifact's
whole-file SHA-256 goes to the manifest as before, for restores and drills to check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from backupbot.errors import VerificationFailed
from backupbot.storage.artifacts import ArtifactWriter
from backupbot.storage.dumpstream import (
    StreamResult,
    TocUnpacker,
    VerifyResult,
    check_toc,
)
from backupbot.storage.pg_binaries import PgBinaries
from backupbot.storage.pg_restore import PgRestoreList


class CheckingWriter:
    """An `ArtifactWriter` that forwards to `writer` and unpacks every chunk, in a worker
    a chunk behind (zstd releases the GIL, so it overlaps the compression), into
    `pg_restore --list`. `close()` (however the write ends) waits for both."""

    def __init__(self, writer: ArtifactWriter, binaries: PgBinaries, where: str) -> None:
        self._writer = writer
        self._where = where
        self._unpack = TocUnpacker(PgRestoreList(binaries), where)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamcheck")
        self._pending: Future[int] | None = None
        self._produced = 0
        self._toc: str | Exception | None = None

    @property
    def checksum(self) -> str | None:
        return self._writer.checksum

    def write(self, data: bytes) -> None:
        self._settle()
        self._pending = self._pool.submit(self._unpack.feed, data)
        self._writer.write(data)

    def _settle(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._produced += pending.result()

    def commit(self) -> None:
        self._writer.commit()

    def abort(self) -> None:
        self.close()
        self._writer.abort()

    def close(self) -> None:
        """Wait for the last chunk's unpacking and for pg_restore; safe to call twice."""
        if self._toc is not None:
            return
        try:
            with contextlib.suppress(VerificationFailed):
                self._settle()
        finally:
            self._pool.shutdown(wait=True)
            self._toc = self._unpack.finish()

    def verified(self, streamed: StreamResult, expected_tables: Iterable[str]) -> VerifyResult:
        """The archive written checks out, or `VerificationFailed` says how not."""
        self._settle()  # a corrupt frame's failure surfaces here
        self.close()
        where = self._where
        if not self._unpack.complete:
            raise VerificationFailed(f"The backup for {where} is truncated. It was not kept.")
        if self._produced != streamed.raw_size:
            raise VerificationFailed(
                f"The backup for {where} decompresses to {self._produced} bytes instead of "
                f"{streamed.raw_size}. It was not kept; run the backup again."
            )
        if isinstance(self._toc, Exception):
            raise VerificationFailed(
                f"pg_restore could not read the backup for {where}. It was not kept."
            ) from self._toc
        assert self._toc is not None
        return check_toc(where, self._toc, expected_tables)
