"""`PgRestore` (an archive into a database, stopped on lock waits and timeouts) and
`PgRestoreList` (an archive's table of contents, read from a pipe)."""

from __future__ import annotations

import contextlib
import logging
import re
import subprocess
import threading
from pathlib import Path
from typing import IO

from backupbot.errors import CommandFailed
from backupbot.storage.pg_binaries import PgBinaries
from backupbot.storage.pg_process import (
    PgProcess,
    StderrCollector,
    describe_exit,
    first_error_reason,
    is_connection_failure,
    seconds_text,
)
from backupbot.storage.pg_session_watch import SessionWatch
from backupbot.storage.pg_sessions import child_application_name
from backupbot.storage.pgconn import ConnInfo, child_env, explain_connection_error

log = logging.getLogger(__name__)


class PgRestoreList:
    """`pg_restore --list` reading an archive from stdin; yields the table of contents."""

    def __init__(self, binaries: PgBinaries) -> None:
        self.args = [binaries.pg_restore, "--list"]
        self._proc: subprocess.Popen[bytes] | None = None
        self._out = bytearray()
        self._reader: threading.Thread | None = None
        self._stderr: StderrCollector | None = None

    def start(self) -> IO[bytes]:
        self._proc = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(),
        )
        assert self._proc.stdin and self._proc.stdout and self._proc.stderr
        stdout = self._proc.stdout
        self._reader = threading.Thread(target=lambda: self._out.extend(stdout.read()), daemon=True)
        self._reader.start()
        self._stderr = StderrCollector(self._proc.stderr)
        self._stderr.start()
        return self._proc.stdin

    def finish(self) -> str:
        assert self._proc is not None and self._reader is not None and self._stderr
        if self._proc.stdin and not self._proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
        try:
            returncode = self._proc.wait()
        except BaseException:  # interrupted: stop it and reap it before going on
            self._proc.kill()
            self._proc.wait()
            raise
        self._reader.join()
        if returncode != 0:
            stderr = self._stderr.text
            raise CommandFailed(
                f"{describe_exit('pg_restore --list', returncode)}: the stored archive is "
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


class PgRestore(PgProcess):
    """`pg_restore --exit-on-error` from an archive file into one database.

    A file (not a pipe) because `-j` needs to seek; `clean` adds `--clean --if-exists`
    so the archive's objects are dropped and recreated in a database that has them.
    `run` stops pg_restore, failing in plain words, when one of its sessions waits for a
    lock longer than `lock_timeout_seconds` (naming the table and the session holding
    it), runs one statement longer than `statement_timeout_seconds`, or the whole restore
    takes longer than `timeout_seconds`.
    """

    program = "pg_restore"

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
        lock_timeout_seconds: float | None = 30,
        statement_timeout_seconds: float | None = None,
        timeout_seconds: float | None = None,
        job_id: str | None = None,
    ) -> None:
        super().__init__(conn, child_application_name(conn, "pg_restore", job_id))
        self.args = [binaries.pg_restore, "--exit-on-error", "--no-password", f"--jobs={jobs}"]
        if clean:
            self.args += ["--clean", "--if-exists"]
        if no_owner:
            self.args.append("--no-owner")
        if no_acl:
            self.args.append("--no-acl")
        # The database comes from PGDATABASE (client_env), so argv names only the file.
        self.args += ["--dbname=" + conn.dbname, str(archive)]
        self.timeout_seconds = timeout_seconds
        self._watch = SessionWatch(
            conn,
            self.application_name,
            lock_timeout=lock_timeout_seconds,
            statement_timeout=statement_timeout_seconds,
        )
        self._own_watch = True

    def run(self) -> None:
        """Restore; raise `CommandFailed` in plain words unless pg_restore succeeded."""
        with self, self.conn.client_env() as env:
            assert self._watch is not None
            self._watch.start()
            proc = self._spawn(env, subprocess.DEVNULL)
            try:
                returncode = proc.wait(timeout=self.timeout_seconds)
            except subprocess.TimeoutExpired:
                self.kill()
                returncode = self._reap()
                limit = self.timeout_seconds or 0
                shown = seconds_text(limit) if limit < 120 else f"{limit / 60:g} min"
                raise CommandFailed(
                    f"pg_restore did not finish within {shown} (restore.timeout_minutes) and "
                    "was stopped.",
                    program="pg_restore",
                    returncode=returncode,
                    stderr=self._stderr_text(),
                ) from None
            except BaseException:
                self.kill()
                raise
            stderr = self._stderr_text()
        if returncode == 0:
            return
        log.error("pg_restore failed", extra={"returncode": returncode, "stderr": stderr[-4000:]})
        if is_connection_failure(stderr):
            raise explain_connection_error(stderr, self.conn)
        raise CommandFailed(
            self._failure_message(returncode, stderr),
            program="pg_restore",
            returncode=returncode,
            stderr=stderr,
        )

    def _failure_message(self, returncode: int, stderr: str) -> str:
        """Why pg_restore failed: the lock wait or statement the watch cancelled, else its
        exit and first error line."""
        watch = self._watch
        assert watch is not None
        if watch.cancelled_wait is not None:
            wait = watch.cancelled_wait
            return (
                f"pg_restore waited more than {seconds_text(watch.lock_timeout or 0)} "
                f"(restore.lock_timeout_seconds) for a lock on {wait.what} and was stopped: "
                f"{wait.blocked_by()}."
            )
        if watch.cancelled_statement is not None:
            return (
                "pg_restore was stopped: one statement ran longer than "
                f"{seconds_text(watch.statement_timeout or 0)} (restore.statement_timeout_seconds)"
                f": {watch.cancelled_statement}."
            )
        return f"{describe_exit('pg_restore', returncode)}{first_error_reason(stderr)}"
