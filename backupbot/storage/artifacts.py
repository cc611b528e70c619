"""The artifact store contract: where backup archives and their manifests live.

Two implementations: `LocalStore` (a directory) and `S3Store` (a bucket). Writers are
all-or-nothing: until `commit()` nothing is visible under the final key, and `abort()`
removes every byte written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from backupbot.errors import StoreError


@dataclass(frozen=True)
class ObjectLock:
    """An S3 Object Lock retention on a stored object: no one deletes it before `until`
    (GOVERNANCE: except with the bypass permission; COMPLIANCE: no one at all)."""

    mode: str
    until: datetime

    def describe(self) -> str:
        return f"locked until {self.until:%Y-%m-%d %H:%M} UTC ({self.mode})"


class ObjectLocked(StoreError):
    """The store refused to delete an object because of its Object Lock retention."""

    code = "store.locked"

    def __init__(self, location: str, lock: ObjectLock | None) -> None:
        self.lock = lock
        held = lock.describe() if lock else "under an Object Lock retention or legal hold"
        super().__init__(f"{location} is {held}; S3 refused to delete it.")


class ArtifactWriter(Protocol):
    @property
    def checksum(self) -> str | None:
        """Once committed: the store's own checksum of what it holds (S3's composite
        SHA-256), proven equal to the bytes written; None: the store proves nothing."""

    def write(self, data: bytes) -> None: ...

    def commit(self) -> None:
        """Make the artifact visible under its key (atomic)."""

    def abort(self) -> None:
        """Discard everything written; safe to call more than once, and after commit."""


class ArtifactStore(Protocol):
    kind: str
    # Whether the store proves each artifact's bytes itself (S3 additional checksums),
    # so a backup need not be read back (`backup.verify: checksums`).
    checksums: bool

    def location(self, key: str) -> str:
        """Where `key` lives, for people: a path or an s3:// URL."""

    def open_writer(self, key: str) -> ArtifactWriter: ...

    def read_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]: ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""

    def discard(self, key: str) -> None:
        """Remove `key` and whatever an interrupted write of it left behind (partial
        files, open multipart uploads); nothing there is not an error."""

    def list_keys(self, prefix: str = "") -> list[str]: ...

    def lock(self, key: str) -> ObjectLock | None:
        """The Object Lock retention on `key` (None: none, or the store has no locks)."""

    def check(self) -> None:
        """Raise `StoreError` with a fix if the store cannot be written to."""
