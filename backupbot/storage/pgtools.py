"""Wrappers for PostgreSQL's client programs (pg_dump, pg_restore).

Each wrapper builds its argument list up front (never a shell), takes connection details
through the environment (`ConnInfo.client_env`), and reports failure as `CommandFailed`
with the return code and stderr kept for the log.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from backupbot.errors import CommandFailed, PgToolMissing
from backupbot.storage.pgconn import ConnInfo, explain_connection_error

log = logging.getLogger(__name__)

_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_SEARCH_GLOBS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
)


@dataclass(frozen=True)
class PgBinaries:
    """A matched pair of pg_dump and pg_restore of one major version."""

    bin_dir: Path
    major: int
    version: str

    @property
    def pg_dump(self) -> str:
        return str(self.bin_dir / "pg_dump")

    @property
    def pg_restore(self) -> str:
        return str(self.bin_dir / "pg_restore")


@functools.cache
def _tool_version(path: str) -> tuple[int, str] | None:
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=15, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = _VERSION_RE.search(out)
    if not m:
        return None
    return int(m.group(1)), out.strip().split("(PostgreSQL)")[-1].strip()


def candidate_bin_dirs(extra: Iterable[Path] = ()) -> list[Path]:
    dirs: list[Path] = [Path(p) for p in extra]
    for pattern in _SEARCH_GLOBS:
        dirs.extend(Path(p) for p in sorted(glob.glob(pattern)))
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(os.path.realpath(on_path)).parent)
    seen: set[Path] = set()
    unique = []
    for d in dirs:
        if d not in seen and (d / "pg_dump").exists() and (d / "pg_restore").exists():
            seen.add(d)
            unique.append(d)
    return unique


def find_binaries(server_major: int, extra_dirs: Iterable[Path] = ()) -> PgBinaries:
    """The pg_dump/pg_restore pair whose major is the smallest one >= the server's.

    The same major as the server is preferred so that the archive restores with the
    pg_restore a team most likely has; a newer one is used when that is all there is.
    """
    found: list[PgBinaries] = []
    for d in candidate_bin_dirs(extra_dirs):
        info = _tool_version(str(d / "pg_dump"))
        if info is not None:
            found.append(PgBinaries(bin_dir=d, major=info[0], version=info[1]))
    usable = sorted((b for b in found if b.major >= server_major), key=lambda b: b.major)
    if usable:
        return usable[0]
    have = ", ".join(sorted({str(b.major) for b in found})) or "none"
    raise PgToolMissing(
        f"The server runs PostgreSQL {server_major}, and pg_dump must be version "
        f"{server_major} or newer (found: {have}). Install postgresql-client-{server_major} "
        "(Debian/Ubuntu, from apt.postgresql.org) or set backup.pg_bin_dirs in the config."
    )


class _StderrCollector(threading.Thread):
    """Drains a child's stderr so it can never block on a full pipe; keeps the tail."""

    def __init__(self, stream: IO[bytes], limit: int = 64 * 1024) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self._limit = limit
        self._buf = bytearray()

    def run(self) -> None:
        for line in iter(self._stream.readline, b""):
            self._buf.extend(line)
            if len(self._buf) > self._limit:
                del self._buf[: len(self._buf) - self._limit]

    @property
    def text(self) -> str:
        self.join(timeout=5)
        return self._buf.decode("utf-8", "replace")


def _describe_exit(program: str, returncode: int) -> str:
    if returncode < 0:
        return f"{program} was stopped by signal {-returncode} before it finished"
    return f"{program} exited with code {returncode}"


class PgDump:
    """`pg_dump --format=custom --compress=0` to a pipe; the caller reads `stdout`.

    Compression happens outside pg_dump (multi-threaded zstd), so pg_dump itself does not
    compress: see README "Why external zstd".
    """

    def __init__(
        self, binaries: PgBinaries, conn: ConnInfo, *, snapshot: str | None = None
    ) -> None:
        self.conn = conn
        self.args = [
            binaries.pg_dump,
            "--format=custom",
            "--compress=0",
            "--no-password",
            "--lock-wait-timeout=60000",
        ]
        if snapshot:
            self.args.append(f"--snapshot={snapshot}")
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: _StderrCollector | None = None
        self._killed = False
        self._lock = threading.Lock()

    def start(self, env: dict[str, str]) -> IO[bytes]:
        log.info("starting pg_dump", extra={"argv": self.args, "target": self.conn.where})
        with self._lock:  # a kill() before or during the start still stops it
            self._proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
            if self._killed:
                self._proc.kill()
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._stderr = _StderrCollector(self._proc.stderr)
        self._stderr.start()
        return self._proc.stdout

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def kill(self) -> None:
        with self._lock:
            self._killed = True
            if self._proc and self._proc.poll() is None:
                self._proc.kill()

    def finish(self) -> None:
        """Wait for exit; raise `CommandFailed` in plain words unless pg_dump succeeded."""
        assert self._proc is not None and self._stderr is not None
        returncode = self._proc.wait()
        if self._proc.stdout:
            self._proc.stdout.close()
        stderr = self._stderr.text
        if returncode == 0:
            return
        log.error("pg_dump failed", extra={"returncode": returncode, "stderr": stderr[-4000:]})
        low = stderr.lower()
        if "connection to server" in low or "password authentication" in low:
            raise explain_connection_error(stderr, self.conn)
        if "lock" in low and "timeout" in low:
            message = (
                f"pg_dump could not lock a table of {self.conn.dbname} within 60 s (something "
                "holds an exclusive lock, e.g. a migration). Try again once it has finished."
            )
        else:
            first = next((ln for ln in stderr.splitlines() if "error" in ln.lower()), "")
            reason = f": {first.split('error:', 1)[-1].strip()}" if first else ""
            message = (
                f"{_describe_exit('pg_dump', returncode)}{reason}. Nothing was stored; "
                "see the bot's log for details and run the backup again."
            )
        raise CommandFailed(message, program="pg_dump", returncode=returncode, stderr=stderr)


class PgRestoreList:
    """`pg_restore --list` reading an archive from stdin; yields the table of contents."""

    def __init__(self, binaries: PgBinaries) -> None:
        self.args = [binaries.pg_restore, "--list"]
        self._proc: subprocess.Popen[bytes] | None = None
        self._out = bytearray()
        self._reader: threading.Thread | None = None
        self._stderr: _StderrCollector | None = None

    def start(self) -> IO[bytes]:
        self._proc = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
        )
        assert self._proc.stdin and self._proc.stdout and self._proc.stderr
        stdout = self._proc.stdout
        self._reader = threading.Thread(target=lambda: self._out.extend(stdout.read()), daemon=True)
        self._reader.start()
        self._stderr = _StderrCollector(self._proc.stderr)
        self._stderr.start()
        return self._proc.stdin

    def finish(self) -> str:
        assert self._proc is not None and self._reader is not None and self._stderr
        if self._proc.stdin and not self._proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
        returncode = self._proc.wait()
        self._reader.join()
        if returncode != 0:
            stderr = self._stderr.text
            raise CommandFailed(
                f"{_describe_exit('pg_restore --list', returncode)}: the stored archive is "
                "not readable.",
                program="pg_restore",
                returncode=returncode,
                stderr=stderr,
            )
        return self._out.decode("utf-8", "replace")


_TOC_TABLE_DATA = re.compile(r"^\d+;\s+\d+\s+\d+\s+TABLE DATA\s+(\S+)\s+(.+?)\s+\S+$")


def toc_tables_with_data(toc: str) -> set[str]:
    """`schema.table` names that have a TABLE DATA entry in a `pg_restore --list` output."""
    tables = set()
    for line in toc.splitlines():
        m = _TOC_TABLE_DATA.match(line.strip())
        if m:
            tables.add(f"{m.group(1)}.{m.group(2)}")
    return tables


class PgRestore:
    """`pg_restore --exit-on-error` from an archive file into one database.

    A file (not a pipe) because `-j` needs to seek; `clean` adds `--clean --if-exists`
    so the archive's objects are dropped and recreated in a database that has them.
    """

    def __init__(
        self,
        binaries: PgBinaries,
        conn: ConnInfo,
        archive: Path,
        *,
        jobs: int = 1,
        clean: bool = False,
        no_owner: bool = True,
        no_acl: bool = True,
    ) -> None:
        self.conn = conn
        self.args = [binaries.pg_restore, "--exit-on-error", "--no-password", f"--jobs={jobs}"]
        if clean:
            self.args += ["--clean", "--if-exists"]
        if no_owner:
            self.args.append("--no-owner")
        if no_acl:
            self.args.append("--no-acl")
        # The database comes from PGDATABASE (client_env), so argv names only the file.
        self.args += ["--dbname=" + conn.dbname, str(archive)]

    def run(self) -> None:
        """Restore; raise `CommandFailed` in plain words unless pg_restore succeeded."""
        log.info("starting pg_restore", extra={"argv": self.args, "target": self.conn.where})
        with self.conn.client_env() as env:
            proc = subprocess.run(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                check=False,
            )
        stderr = proc.stderr.decode("utf-8", "replace")
        if proc.returncode == 0:
            return
        log.error(
            "pg_restore failed", extra={"returncode": proc.returncode, "stderr": stderr[-4000:]}
        )
        low = stderr.lower()
        if "connection to server" in low or "password authentication" in low:
            raise explain_connection_error(stderr, self.conn)
        first = next((ln for ln in stderr.splitlines() if "error" in ln.lower()), "")
        reason = f": {first.split('error:', 1)[-1].strip()}" if first else ""
        raise CommandFailed(
            f"{_describe_exit('pg_restore', proc.returncode)}{reason}",
            program="pg_restore",
            returncode=proc.returncode,
            stderr=stderr,
        )
