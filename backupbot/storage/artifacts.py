"""The artifact store contract: where backup archives and their manifests live.

Two implementations: `LocalStore` (a directory) and `S3Store` (a bucket). Writers are
all-or-nothing: until `commit()` nothing is visible under the final key, and `abort()`
removes every byte written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class ArtifactWriter(Protocol):
    def write(self, data: bytes) -> None: ...

    def commit(self) -> None:
        """Make the artifact visible under its key (atomic)."""

    def abort(self) -> None:
        """Discard everything written; safe to call more than once, and after commit."""


class ArtifactStore(Protocol):
    kind: str

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

    def check(self) -> None:
        """Raise `StoreError` with a fix if the store cannot be written to."""
