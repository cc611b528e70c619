"""A directory-format archive (`pg_dump -Fd -j N`) as one stream: tar (inside zstd, see
`dumpstream.py`) on the way into the store, and back out of it.

The tar holds one top directory named after the artifact (`<stem>/toc.dat`, `<stem>/N.dat`),
so `zstd -dc FILE.tar.zst | tar -x` gives a directory `pg_restore -j N` reads. Packing
writes the tar into a pipe from a thread, so the compressor (and age) read it like
pg_dump's stdout. Verification reads the stored tar back through, keeps only `toc.dat`
and has `pg_restore --list` read it, and checks every file written came back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from backupbot.errors import CommandFailed, VerificationFailed
from backupbot.storage.pg_binaries import PgBinaries
from backupbot.storage.pg_process import describe_exit
from backupbot.storage.pgconn import child_env

DIRECTORY_TAR = "directory-tar"  # the manifest's `dump_format` of such a backup
CUSTOM = "custom"
TAR_EXTENSION = ".tar.zst"
TOC = "toc.dat"


def top_directory(artifact_name: str) -> str:
    """The directory a `.tar.zst[.age]` artifact unpacks to: its name without those."""
    return artifact_name.split(TAR_EXTENSION, 1)[0]


def dump_members(directory: Path, top: str) -> list[str]:
    """The tar member names of the files pg_dump wrote into `directory`, sorted."""
    return sorted(f"{top}/{p.name}" for p in directory.iterdir() if p.is_file())


@contextlib.contextmanager
def tar_stream(directory: Path, top: str) -> Iterator[IO[bytes]]:
    """The files of `directory` as a tar stream (members under `top/`) to read; the
    writing thread has stopped however the block is left. A failure to write the tar
    is raised when the block ends (the reader then sees a short stream)."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def pack() -> None:
        try:
            with os.fdopen(write_fd, "wb") as out, tarfile.open(fileobj=out, mode="w|") as tar:
                for name in dump_members(directory, top):
                    tar.add(directory / name.split("/", 1)[1], arcname=name, recursive=False)
        except BaseException as exc:  # BrokenPipeError: the reader stopped first
            failure.append(exc)

    thread = threading.Thread(target=pack, name="tar", daemon=True)
    reader = os.fdopen(read_fd, "rb")
    thread.start()
    try:
        yield reader
    finally:
        reader.close()  # a writer still blocked on the pipe gets EPIPE and stops
        thread.join()
    if failure and not isinstance(failure[0], BrokenPipeError):
        raise failure[0]


class TarTocLister:
    """Reads a stored tar stream (written to `start()`'s pipe) through: keeps `toc.dat`,
    checks the members are `members`, and `finish` gives `pg_restore --list`'s table of
    contents of it. The same interface as `PgRestoreList`, for `TocUnpacker`."""

    def __init__(self, binaries: PgBinaries, members: list[str], work_root: Path) -> None:
        self._pg_restore = binaries.pg_restore
        self._members = sorted(members)
        self._root = work_root
        self._seen: list[str] = []
        self._toc: bytes | None = None
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._sink: IO[bytes] | None = None

    def start(self) -> IO[bytes]:
        read_fd, write_fd = os.pipe()
        self._thread = threading.Thread(
            target=self._read, args=(os.fdopen(read_fd, "rb"),), name="tar-toc", daemon=True
        )
        self._thread.start()
        self._sink = os.fdopen(write_fd, "wb")
        return self._sink

    def _read(self, source: IO[bytes]) -> None:
        with source:
            try:
                with tarfile.open(fileobj=source, mode="r|") as tar:
                    for member in tar:
                        self._seen.append(member.name)
                        if member.isfile() and member.name.endswith("/" + TOC):
                            extracted = tar.extractfile(member)
                            assert extracted is not None
                            self._toc = extracted.read()
            except Exception as exc:
                self._failure = exc
            with contextlib.suppress(OSError, ValueError):  # the end-of-archive blocks and
                while source.read(1 << 16):  # padding, or what follows a failure: never
                    pass  # leave the writer blocked

    def finish(self) -> str:
        assert self._thread is not None and self._sink is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self._sink.close()
        self._thread.join()
        if self._failure is not None:
            raise VerificationFailed(f"The stored tar is not readable ({self._failure}).")
        if sorted(self._seen) != self._members or self._toc is None:
            missing = sorted(set(self._members) - set(self._seen))
            raise VerificationFailed(
                f"The stored tar does not hold the files pg_dump wrote (missing: "
                f"{', '.join(missing[:5]) or 'none'}; {len(self._seen)} of "
                f"{len(self._members)} members)."
            )
        return list_toc(self._pg_restore, self._toc, self._root)


def list_toc(pg_restore: str, toc: bytes, work_root: Path) -> str:
    """`pg_restore --list` of a directory holding only `toc` (it reads nothing else)."""
    work_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="backupbot-toc-", dir=work_root) as tmp:
        (Path(tmp) / TOC).write_bytes(toc)
        return list_directory(pg_restore, Path(tmp))


def list_directory(pg_restore: str, directory: Path) -> str:
    """`pg_restore --list` of the directory-format archive `directory`."""
    done = subprocess.run(
        [pg_restore, "--list", str(directory)], capture_output=True, env=child_env(), check=False
    )
    if done.returncode != 0:
        raise CommandFailed(
            f"{describe_exit('pg_restore --list', done.returncode)}: the archive is not readable.",
            program="pg_restore",
            returncode=done.returncode,
            stderr=done.stderr.decode("utf-8", "replace"),
        )
    return done.stdout.decode("utf-8", "replace")


def extract_dump(tar_path: Path, dest: Path) -> Path:
    """Unpack the verified tar at `tar_path` into `dest` (removing the tar): the dump
    directory, for `pg_restore -j`. Only plain files under one top directory."""
    dest.mkdir(mode=0o700)
    try:
        with tarfile.open(tar_path, mode="r|") as tar:
            tar.extractall(dest, filter="data")
        tar_path.unlink()
        [top] = [p for p in dest.iterdir() if p.is_dir()]
        if not (top / TOC).is_file():
            raise VerificationFailed(f"The unpacked backup has no {TOC}. Nothing was restored.")
    except (tarfile.TarError, ValueError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise VerificationFailed(
            f"The backup's tar could not be unpacked ({exc}). Nothing was restored."
        ) from None
    return top
