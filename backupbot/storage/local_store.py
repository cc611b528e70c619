"""Artifact store on a local (or mounted) directory.

Writes go to a hidden temporary name in the target directory, are fsynced, and are
renamed into place atomically; the directory is fsynced so the rename survives a crash.
Backups are private whatever the process umask: files (the `.partial` ones too) are 0600,
and the directories under the store's root 0700 (the root too when the store creates it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from backupbot.errors import NotFound, StoreError
from backupbot.storage.artifacts import ObjectLock


def _store_error(exc: OSError, where: Path) -> StoreError:
    if exc.errno == errno.ENOSPC:
        return StoreError(
            f"The backup disk is full ({where}). Nothing was kept; free space or move "
            "storage.local.path, then run the backup again."
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoreError(f"backupbot may not write to {where}. Fix its permissions.")
    return StoreError(f"Writing to {where} failed: {exc.strerror or exc}.")


FILE_MODE = 0o600
DIR_MODE = 0o700


def _private_dirs(root: Path, directory: Path) -> None:
    """Create `directory` (under or at `root`) and its missing parents as 0700, and make
    the ones below `root` 0700 if they are not (an existing root is left as it is)."""
    if not root.exists():
        root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(root, DIR_MODE)  # mkdir's mode is subject to the umask
    for part in reversed([directory, *directory.parents]):
        if part == root or root not in part.parents:
            continue
        with contextlib.suppress(FileExistsError):
            part.mkdir(mode=DIR_MODE)
        if part.stat().st_mode & 0o777 != DIR_MODE:
            os.chmod(part, DIR_MODE)


def _private_file(path: Path) -> int:
    """Create `path` (it must not exist) as a 0600 file open for writing; its descriptor."""
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE
    )
    try:
        os.fchmod(fd, FILE_MODE)  # the umask may have taken bits away
    except OSError:
        os.close(fd)
        raise
    return fd


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _LocalWriter:
    checksum: str | None = None  # a directory proves nothing itself: backups are read back

    def __init__(self, root: Path, final: Path) -> None:
        self.final = final
        _private_dirs(root, final.parent)
        self.tmp = final.with_name(f".{final.name}.partial-{secrets.token_hex(4)}")
        self._fh = os.fdopen(_private_file(self.tmp), "wb")  # closed in commit/abort
        self._done = False

    def write(self, data: bytes) -> None:
        try:
            self._fh.write(data)
        except OSError as exc:
            raise _store_error(exc, self.final.parent) from exc

    def commit(self) -> None:
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            os.replace(self.tmp, self.final)
            _fsync_dir(self.final.parent)
            self._done = True
        except OSError as exc:
            self.abort()
            raise _store_error(exc, self.final.parent) from exc

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()
        if self._done:
            with contextlib.suppress(FileNotFoundError):
                self.final.unlink()


class LocalStore:
    kind = "local"
    checksums = False

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StoreError(f"Refusing a key outside the store: {key!r}.")
        return path

    def location(self, key: str) -> str:
        return str(self._path(key))

    def open_writer(self, key: str) -> _LocalWriter:
        try:
            return _LocalWriter(self.root, self._path(key))
        except OSError as exc:
            raise _store_error(exc, self.root) from exc

    def read_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        try:
            fh = open(self._path(key), "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise NotFound(f"{self.location(key)} is missing from the backup directory.") from None
        with fh:
            while chunk := fh.read(chunk_size):
                yield chunk

    def put_bytes(self, key: str, data: bytes) -> None:
        writer = self.open_writer(key)
        try:
            writer.write(data)
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    def get_bytes(self, key: str) -> bytes:
        return b"".join(self.read_chunks(key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(
                f"Could not delete {path} ({exc.strerror or exc}). Check that the backup "
                "directory is mounted and writable."
            ) from exc

    def discard(self, key: str) -> None:
        path = self._path(key)
        for partial in path.parent.glob(f".{path.name}.partial-*"):
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        self.delete(key)

    def list_keys(self, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []
        keys = [p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()]
        return sorted(k for k in keys if k.startswith(prefix))

    def lock(self, key: str) -> ObjectLock | None:
        return None  # a directory has no Object Lock

    def check(self) -> None:
        try:
            _private_dirs(self.root, self.root)
            probe = self.root / f".probe-{secrets.token_hex(4)}"
            os.close(_private_file(probe))
            probe.unlink()
        except OSError as exc:
            raise _store_error(exc, self.root) from exc
