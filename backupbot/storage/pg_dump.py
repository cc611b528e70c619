"""`PgDump`: pg_dump writing a custom-format archive to a pipe (or, with `jobs` > 1, a
directory-format archive with parallel workers), and its failures in plain words (a
table lock it could not get names the session holding it)."""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import IO

from backupbot.errors import CommandFailed
from backupbot.storage.pg_binaries import PgBinaries
from backupbot.storage.pg_locks import LockWait, table_lock_holders
from backupbot.storage.pg_process import (
    PgProcess,
    describe_exit,
    first_error_reason,
    is_connection_failure,
    seconds_text,
)
from backupbot.storage.pg_session_watch import SessionWatch
from backupbot.storage.pg_sessions import child_application_name
from backupbot.storage.pgconn import ConnInfo, explain_connection_error

log = logging.getLogger(__name__)

_LOCK_TABLE = re.compile(r"LOCK TABLE (\S+(?: \S+)*?) IN \w+(?: \w+)? MODE")


class PgDump(PgProcess):
    """`pg_dump --format=custom --compress=0` to a pipe; the caller reads `stdout`. With
    `directory` (and `jobs` > 1): `--format=directory --jobs=N` into that (new) directory,
    the workers sharing `snapshot`; the caller waits with `finish`.

    Compression happens outside pg_dump (multi-threaded zstd), so pg_dump itself does not
    compress: see README "Why external zstd". A table lock pg_dump cannot get within
    `lock_wait_seconds` fails the dump, naming the table and the session holding it.
    """

    program = "pg_dump"

    def __init__(
        self,
        binaries: PgBinaries,
        conn: ConnInfo,
        *,
        snapshot: str | None = None,
        lock_wait_seconds: float = 60,
        watch: SessionWatch | None = None,
        directory: Path | None = None,
        jobs: int = 1,
    ) -> None:
        super().__init__(
            conn, watch.name("pg_dump") if watch else child_application_name(conn, "pg_dump")
        )
        self.lock_wait_seconds = lock_wait_seconds
        layout = ["--format=custom"]
        if directory is not None:
            layout = ["--format=directory", f"--jobs={jobs}", f"--file={directory}"]
        self.args = [
            binaries.pg_dump,
            *layout,
            "--compress=0",
            "--no-password",
            f"--lock-wait-timeout={max(1, round(lock_wait_seconds * 1000))}",
        ]
        if snapshot:
            self.args.append(f"--snapshot={snapshot}")
        self._watch = watch

    def start(self, env: dict[str, str]) -> IO[bytes]:
        """Start the custom-format dump; its archive is on the returned pipe."""
        self._start_watch()
        proc = self._spawn(env, subprocess.PIPE)
        assert proc.stdout is not None
        return proc.stdout

    def start_directory(self, env: dict[str, str]) -> None:
        """Start the directory-format dump (pg_dump writes the files itself)."""
        self._start_watch()
        self._spawn(env, subprocess.DEVNULL)

    def _start_watch(self) -> None:
        if self._watch is None:
            self._watch = SessionWatch(
                self.conn,
                self.application_name,
                lock_timeout=self.lock_wait_seconds,
            )
            self._own_watch = True
        self._watch.start()

    def finish(self) -> None:
        """Wait for exit; raise `CommandFailed` in plain words unless pg_dump succeeded."""
        assert self._proc is not None
        returncode = self._reap()
        stderr = self._stderr_text()
        if returncode == 0:
            return
        log.error("pg_dump failed", extra={"returncode": returncode, "stderr": stderr[-4000:]})
        if is_connection_failure(stderr):
            raise explain_connection_error(stderr, self.conn)
        locked = _LOCK_TABLE.search(stderr)
        if locked or (self._watch is not None and self._watch.cancelled_wait):
            message = self._lock_message(locked.group(1) if locked else "")
        else:
            message = (
                f"{describe_exit('pg_dump', returncode)}{first_error_reason(stderr)}. "
                "Nothing was stored; "
                "see the bot's log for details and run the backup again."
            )
        raise CommandFailed(message, program="pg_dump", returncode=returncode, stderr=stderr)

    def _lock_message(self, tables: str) -> str:
        """What pg_dump waited for (`tables`: its LOCK TABLE statement's list) and who
        holds it: from the watch, which looked them up while pg_dump waited, or else (the
        watch saw no wait, or no holder of it) from the server's locks now."""
        wait = self._watch.wait if self._watch else None
        if wait is None or not wait.holders:
            names = [wait.relation] if wait is not None and wait.relation else []
            names += [t.strip() for t in tables.split(",") if t.strip() and t.strip() not in names]
            for table in names:
                holders = table_lock_holders(self.conn, table)
                if holders:
                    if wait is not None and wait.relation == table:
                        wait = replace(wait, holders=holders)
                    else:
                        wait = LockWait(table, "relation", "AccessShareLock", "", holders)
                    break
        what = wait.what if wait else f"table {tables}" if tables else "a table"
        held = wait.blocked_by() if wait else "another session holds a conflicting lock"
        return (
            f"pg_dump could not lock {what} of {self.conn.dbname} within "
            f"{seconds_text(self.lock_wait_seconds)} (backup.lock_wait_seconds): {held}. Nothing "
            "was stored; run the backup again once that session has finished."
        )
