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
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Self

import psycopg

from backupbot.errors import BackupbotError, CommandFailed, PgToolMissing
from backupbot.storage.pgconn import ConnInfo, child_env, explain_connection_error

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
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
            env=child_env(),
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


def _seconds(value: float) -> str:
    return f"{value:g} s"


# -- the server sessions of a child program ------------------------------------------------


def child_application_name(conn: ConnInfo, program: str) -> str:
    """A unique `application_name` for the sessions of one run of `program`, so the bot can
    find them on the server (watch their lock waits, end them after a kill)."""
    base = conn.params.get("application_name", "backupbot")[:24]
    return f"{base} {program} {secrets.token_hex(4)}"


def with_session_settings(
    conn: ConnInfo, *, application_name: str | None = None, **settings: str
) -> ConnInfo:
    """`conn` whose sessions start with `application_name` and `-c name=value` settings
    (libpq `options`, appended to any the URL has)."""
    params = dict(conn.params)
    if application_name is not None:
        params["application_name"] = application_name
    if settings:
        extra = " ".join(f"-c {name}={value}" for name, value in settings.items())
        params["options"] = f"{params['options']} {extra}" if params.get("options") else extra
    return ConnInfo(params=params, password=conn.password)


_SECRET_LITERAL = re.compile(r"(?i)(password\s*=?\s*)'(?:[^']|'')*'")


def _shown_query(query: str, limit: int = 200) -> str:
    """A session's query for a message: one line, passwords hidden, cut to `limit`."""
    text = " ".join(_SECRET_LITERAL.sub(r"\1'***'", query).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class LockHolder:
    """A session another one waits for, as pg_stat_activity shows it."""

    pid: int
    application: str
    user: str
    state: str
    query: str
    transaction_seconds: float | None

    def describe(self) -> str:
        app = f'application "{self.application}"' if self.application else "no application name"
        parts = [f"session {self.pid} ({app}", f"user {self.user or '?'}"]
        if self.transaction_seconds is not None:
            parts.append(f"in a transaction for {self.transaction_seconds:.0f} s")
        label = "running" if self.state == "active" else "last statement"
        shown = _shown_query(self.query) if self.query else "not visible to this user"
        return ", ".join(parts) + f", {label}: {shown})"


@dataclass(frozen=True)
class LockWait:
    """One of the child's sessions waiting for a lock, and who holds it."""

    relation: str | None  # schema-qualified table (or other relation), if the lock is one
    locktype: str
    mode: str
    statement: str
    holders: tuple[LockHolder, ...]

    @property
    def what(self) -> str:
        return f"table {self.relation}" if self.relation else f"a {self.locktype} lock"

    def blocked_by(self) -> str:
        if not self.holders:
            return "another session holds a conflicting lock"
        shown = "; ".join(h.describe() for h in self.holders[:3])
        more = f" and {len(self.holders) - 3} more" if len(self.holders) > 3 else ""
        return f"it is held by {shown}{more}"


_HOLDERS_SQL = """
SELECT pid, coalesce(application_name, ''), coalesce(usename, ''), coalesce(state, ''),
       coalesce(query, ''), EXTRACT(EPOCH FROM now() - xact_start)::float8
FROM pg_stat_activity WHERE pid = ANY(%s) ORDER BY xact_start NULLS LAST
"""

_RELATION_NAME = (
    "(SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = l.relation)"
)

_WAITS_SQL = f"""
SELECT a.pid, coalesce(a.state, ''), EXTRACT(EPOCH FROM now() - a.query_start)::float8,
       coalesce(a.query, ''), l.locktype, {_RELATION_NAME}, l.mode,
       CASE WHEN l.pid IS NULL THEN '{{}}'::int[] ELSE pg_blocking_pids(a.pid) END
FROM pg_stat_activity a
LEFT JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
WHERE left(a.application_name, length(%(name)s)) = %(name)s AND a.pid <> pg_backend_pid()
"""

_TABLE_HOLDERS_SQL = """
SELECT DISTINCT l.pid FROM pg_locks l
WHERE l.granted AND l.locktype = 'relation'
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.relation = to_regclass(%s) AND l.mode = ANY(%s)
  AND l.pid <> pg_backend_pid() AND l.pid <> ALL(%s)
"""

# PostgreSQL's table lock modes, and for each the modes it conflicts with.
_LOCK_MODES = (
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)
_CONFLICTS: dict[str, tuple[str, ...]] = {
    "AccessShareLock": _LOCK_MODES[7:],
    "RowShareLock": _LOCK_MODES[6:],
    "RowExclusiveLock": _LOCK_MODES[4:],
    "ShareUpdateExclusiveLock": _LOCK_MODES[3:],
    "ShareLock": (_LOCK_MODES[2], _LOCK_MODES[3], *_LOCK_MODES[5:]),
    "ShareRowExclusiveLock": _LOCK_MODES[2:],
    "ExclusiveLock": _LOCK_MODES[1:],
    "AccessExclusiveLock": _LOCK_MODES,
}

# How long a lock-holder lookup may take (connecting, then each query), in seconds.
LOOKUP_TIMEOUT_SECONDS = 5


def conflicting_modes(mode: str) -> tuple[str, ...]:
    """The table lock modes that block a request for `mode` (all of them if unknown)."""
    return _CONFLICTS.get(mode, _LOCK_MODES)


def _holders(conn: psycopg.Connection[Any], pids: list[int]) -> tuple[LockHolder, ...]:
    rows = conn.execute(_HOLDERS_SQL, (pids,)).fetchall()
    return tuple(LockHolder(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows)


def _table_holders(
    conn: psycopg.Connection[Any], table: str, modes: Iterable[str], exclude: Iterable[int] = ()
) -> tuple[LockHolder, ...]:
    """The sessions (other than `exclude`) holding a lock in one of `modes` on `table`."""
    found = conn.execute(_TABLE_HOLDERS_SQL, (table, list(modes), list(exclude))).fetchall()
    pids = [int(r[0]) for r in found]
    return _holders(conn, pids) if pids else ()


def table_lock_holders(
    conn: ConnInfo, table: str, modes: Iterable[str] = ("AccessExclusiveLock",)
) -> tuple[LockHolder, ...]:
    """The sessions holding a lock in one of `modes` on `table` now, looked up within
    `LOOKUP_TIMEOUT_SECONDS` (empty if the lookup fails: it only improves a message, so
    the reason is logged, never raised)."""
    limit = str(LOOKUP_TIMEOUT_SECONDS * 1000)
    lookup = with_session_settings(
        conn, application_name="backupbot lock lookup", statement_timeout=limit, lock_timeout=limit
    )
    bounded = ConnInfo(
        params={**lookup.params, "connect_timeout": str(LOOKUP_TIMEOUT_SECONDS)},
        password=lookup.password,
    )
    try:
        with bounded.connect(autocommit=True) as c:
            return _table_holders(c, table, modes)
    except (BackupbotError, psycopg.Error) as exc:
        log.warning("could not look up who holds a lock on %s: %s", table, exc)
        return ()


class SessionWatch:
    """Watches the server sessions of a job's child programs (those whose
    `application_name` starts with `application_name`: the program's own, or `name(...)`)
    from a connection of its own, every `interval` seconds while the job runs.

    It remembers the latest lock wait with the sessions holding the lock, looked up in the
    same poll that sees the wait (so they are known before anything is cancelled), and
    never forgets holders it once saw for a wait: a poll that catches a wait just as it
    ends (pg_locks still shows it, `pg_blocking_pids` no longer does) falls back to who
    holds a conflicting lock on the table, then to the holders seen before. It stops the
    child's work where the child's own settings cannot: a session that has waited for a
    lock longer than `lock_timeout`, or run one statement longer than `statement_timeout`,
    has its query cancelled (`pg_cancel_backend`); `cancelled_wait` or
    `cancelled_statement` then say which. (pg_restore starts every session with `SET
    lock_timeout = 0; SET statement_timeout = 0`, so settings passed in PGOPTIONS would
    not last.)
    """

    def __init__(
        self,
        conn: ConnInfo,
        application_name: str,
        *,
        lock_timeout: float | None = None,
        statement_timeout: float | None = None,
        interval: float = 1.0,
    ) -> None:
        self.application_name = application_name
        self.lock_timeout = lock_timeout
        self.statement_timeout = statement_timeout
        self._conn_info = with_session_settings(
            conn, application_name="backupbot watch", statement_timeout="5000"
        )
        limits = [t / 4 for t in (lock_timeout, statement_timeout) if t]
        self._interval = max(0.1, min([interval, *limits]))
        self._conn: psycopg.Connection[Any] | None = None
        self._db_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first_seen: dict[tuple[int, str, str | None, str], float] = {}
        self._done: set[tuple[int, str, str | None, str]] = set()  # waits/queries cancelled
        self._holders_seen: dict[tuple[int, str, str | None, str], tuple[LockHolder, ...]] = {}
        self.last_wait: LockWait | None = None
        self.cancelled_wait: LockWait | None = None
        self.cancelled_statement: str | None = None

    def __enter__(self) -> SessionWatch:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> SessionWatch:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"watch-{self.application_name}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        with self._db_lock:
            if self._conn is not None:
                with contextlib.suppress(psycopg.Error):
                    self._conn.close()
                self._conn = None

    def name(self, role: str) -> str:
        """The `application_name` for the job's `role` session (e.g. "pg_dump")."""
        return f"{self.application_name}/{role}"

    @property
    def cancelled(self) -> bool:
        return self.cancelled_wait is not None or self.cancelled_statement is not None

    @property
    def wait(self) -> LockWait | None:
        """The lock wait the watch cancelled, else the last one it saw (the last one whose
        holders it could name, if any)."""
        return self.cancelled_wait or self.last_wait

    def terminate_sessions(self, application_name: str) -> None:
        """End the server sessions named `application_name` (after their program was
        killed, so that no query of it keeps running or waiting on the server)."""
        try:
            with self._db_lock:
                self._connection().execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = %s AND pid <> pg_backend_pid()",
                    (application_name,),
                )
        except (BackupbotError, psycopg.Error):
            log.warning("could not end the server sessions of %s", application_name)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._conn_info.connect(autocommit=True)
        return self._conn

    def _run(self) -> None:
        pause = self._interval
        while not self._stop.wait(pause):
            with self._db_lock:
                if self._stop.is_set():
                    return
                try:
                    self._poll(self._connection())
                    pause = self._interval
                except (BackupbotError, psycopg.Error) as exc:
                    # e.g. the server is at its connection limit: try again, less often
                    log.warning(
                        "watching the sessions of %s failed, retrying in %.1f s: %s",
                        self.application_name,
                        min(30.0, pause * 2),
                        exc,
                    )
                    pause = min(30.0, pause * 2)
                    if self._conn is not None:
                        with contextlib.suppress(psycopg.Error):
                            self._conn.close()
                    self._conn = None

    def _poll(self, conn: psycopg.Connection[Any]) -> None:
        now = time.monotonic()
        seen: set[tuple[int, str, str | None, str]] = set()
        for pid, state, running, query, locktype, relation, mode, blockers in conn.execute(
            _WAITS_SQL, {"name": self.application_name}
        ).fetchall():
            if locktype is not None:
                key = (int(pid), str(locktype), relation, str(mode))
                seen.add(key)
                waited = now - self._first_seen.setdefault(key, now)
                holders = self._wait_holders(conn, key, list(blockers))
                wait = LockWait(relation, str(locktype), str(mode), query, holders)
                if holders or self.last_wait is None or not self.last_wait.holders:
                    self.last_wait = wait
                if self.lock_timeout and waited >= self.lock_timeout and key not in self._done:
                    self._done.add(key)
                    self.cancelled_wait = self.cancelled_wait or wait
                    self._cancel(conn, int(pid), f"waited {waited:.1f} s for {wait.what}")
            elif (
                self.statement_timeout
                and state == "active"
                and running is not None
                and running >= self.statement_timeout
                and (int(pid), "statement", None, query) not in self._done
            ):
                self._done.add((int(pid), "statement", None, query))
                self.cancelled_statement = self.cancelled_statement or _shown_query(query)
                self._cancel(conn, int(pid), f"ran one statement for {running:.1f} s")
        for key in set(self._first_seen) - seen:
            del self._first_seen[key]
            self._holders_seen.pop(key, None)

    def _wait_holders(
        self,
        conn: psycopg.Connection[Any],
        key: tuple[int, str, str | None, str],
        blockers: list[int],
    ) -> tuple[LockHolder, ...]:
        """Who the wait `key` (pid, locktype, relation, mode) waits for, as remembered."""
        pid, locktype, relation, mode = key
        holders = _holders(conn, blockers) if blockers else ()
        if not holders and locktype == "relation" and relation is not None:
            holders = _table_holders(conn, relation, conflicting_modes(mode), exclude=[pid])
        if holders:
            self._holders_seen[key] = holders
            return holders
        return self._holders_seen.get(key, ())

    def _cancel(self, conn: psycopg.Connection[Any], pid: int, why: str) -> None:
        log.warning("cancelling the query of %s (pid %d): %s", self.application_name, pid, why)
        conn.execute("SELECT pg_cancel_backend(%s)", (pid,))


# -- child processes ---------------------------------------------------------------------


class _Child:
    """One run of a pg program in its own process group, stopped and reaped on every exit
    path: use it as a context manager (`with PgDump(...) as dump:`); leaving the block
    kills whatever of the program still runs (the whole group: pg_restore -j forks
    workers), waits for it, and ends its server sessions if it did not finish."""

    program = ""

    def __init__(self, conn: ConnInfo, application_name: str) -> None:
        self.conn = conn
        self.application_name = application_name
        self.args: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: _StderrCollector | None = None
        self._killed = False
        self._lock = threading.Lock()
        self._watch: SessionWatch | None = None
        self._own_watch = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _spawn(self, env: dict[str, str], stdout: int) -> subprocess.Popen[bytes]:
        log.info("starting %s", self.program, extra={"argv": self.args, "target": self.conn.where})
        env = {**env, "PGAPPNAME": self.application_name}
        with self._lock:  # a kill() before or during the start still stops it
            if self._killed:
                raise CommandFailed(
                    f"{self.program} was stopped before it started.",
                    program=self.program,
                    returncode=None,
                    stderr="",
                )
            self._proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        assert self._proc.stderr is not None
        self._stderr = _StderrCollector(self._proc.stderr)
        self._stderr.start()
        return self._proc

    def kill(self) -> None:
        """Stop the program now (from any thread); `close` still reaps it."""
        with self._lock:
            self._killed = True
            self._signal_group()

    def _signal_group(self) -> None:
        # Only while the leader is not reaped: until then its pid, the group's id, cannot
        # belong to anything else.
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def _reap(self) -> int:
        assert self._proc is not None
        try:
            return self._proc.wait()
        except BaseException:  # interrupted while waiting: stop it, reap it, go on raising
            self.kill()
            self._proc.wait()
            raise

    def close(self) -> None:
        """Kill the program if it still runs, reap it, release its pipes and watch."""
        proc = self._proc
        finished = proc is not None and not self._killed and proc.poll() == 0
        if proc is not None:
            self.kill()
            self._reap()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self._stderr is not None:
            self._stderr.join(timeout=5)
        if self._watch is not None:
            if proc is not None and not finished:
                self._watch.terminate_sessions(self.application_name)
            if self._own_watch:
                self._watch.stop()

    def _stderr_text(self) -> str:
        return self._stderr.text if self._stderr else ""


class PgDump(_Child):
    """`pg_dump --format=custom --compress=0` to a pipe; the caller reads `stdout`.

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
    ) -> None:
        super().__init__(
            conn, watch.name("pg_dump") if watch else child_application_name(conn, "pg_dump")
        )
        self.lock_wait_seconds = lock_wait_seconds
        self.args = [
            binaries.pg_dump,
            "--format=custom",
            "--compress=0",
            "--no-password",
            f"--lock-wait-timeout={max(1, round(lock_wait_seconds * 1000))}",
        ]
        if snapshot:
            self.args.append(f"--snapshot={snapshot}")
        self._watch = watch

    def start(self, env: dict[str, str]) -> IO[bytes]:
        if self._watch is None:
            self._watch = SessionWatch(
                self.conn,
                self.application_name,
                lock_timeout=self.lock_wait_seconds,
            )
            self._own_watch = True
        self._watch.start()
        proc = self._spawn(env, subprocess.PIPE)
        assert proc.stdout is not None
        return proc.stdout

    def finish(self) -> None:
        """Wait for exit; raise `CommandFailed` in plain words unless pg_dump succeeded."""
        assert self._proc is not None
        returncode = self._reap()
        stderr = self._stderr_text()
        if returncode == 0:
            return
        log.error("pg_dump failed", extra={"returncode": returncode, "stderr": stderr[-4000:]})
        low = stderr.lower()
        if "connection to server" in low or "password authentication" in low:
            raise explain_connection_error(stderr, self.conn)
        locked = _LOCK_TABLE.search(stderr)
        if locked or (self._watch is not None and self._watch.cancelled_wait):
            message = self._lock_message(locked.group(1) if locked else "")
        else:
            first = next((ln for ln in stderr.splitlines() if "error" in ln.lower()), "")
            reason = f": {first.split('error:', 1)[-1].strip()}" if first else ""
            message = (
                f"{_describe_exit('pg_dump', returncode)}{reason}. Nothing was stored; "
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
            f"{_seconds(self.lock_wait_seconds)} (backup.lock_wait_seconds): {held}. Nothing "
            "was stored; run the backup again once that session has finished."
        )


_LOCK_TABLE = re.compile(r"LOCK TABLE (\S+(?: \S+)*?) IN \w+(?: \w+)? MODE")


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
            env=child_env(),
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


class PgRestore(_Child):
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
    ) -> None:
        super().__init__(conn, child_application_name(conn, "pg_restore"))
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
                shown = _seconds(limit) if limit < 120 else f"{limit / 60:g} min"
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
        low = stderr.lower()
        if "connection to server" in low or "password authentication" in low:
            raise explain_connection_error(stderr, self.conn)
        watch = self._watch
        if watch.cancelled_wait is not None:
            wait = watch.cancelled_wait
            message = (
                f"pg_restore waited more than {_seconds(watch.lock_timeout or 0)} "
                f"(restore.lock_timeout_seconds) for a lock on {wait.what} and was stopped: "
                f"{wait.blocked_by()}."
            )
        elif watch.cancelled_statement is not None:
            message = (
                "pg_restore was stopped: one statement ran longer than "
                f"{_seconds(watch.statement_timeout or 0)} (restore.statement_timeout_seconds)"
                f": {watch.cancelled_statement}."
            )
        else:
            first = next((ln for ln in stderr.splitlines() if "error" in ln.lower()), "")
            reason = f": {first.split('error:', 1)[-1].strip()}" if first else ""
            message = f"{_describe_exit('pg_restore', returncode)}{reason}"
        raise CommandFailed(message, program="pg_restore", returncode=returncode, stderr=stderr)
