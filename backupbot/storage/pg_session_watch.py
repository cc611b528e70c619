"""`SessionWatch`: watches a job's child sessions on the server, remembers their lock
waits and who holds the locks, and cancels a wait or statement that runs too long."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import psycopg

from backupbot.errors import BackupbotError
from backupbot.storage.pg_locks import (
    LockHolder,
    LockWait,
    conflicting_modes,
    lookup_holders,
    lookup_table_holders,
)
from backupbot.storage.pg_sessions import shown_query, with_session_settings
from backupbot.storage.pgconn import ConnInfo

log = logging.getLogger(__name__)

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
                self.cancelled_statement = self.cancelled_statement or shown_query(query)
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
        holders = lookup_holders(conn, blockers) if blockers else ()
        if not holders and locktype == "relation" and relation is not None:
            holders = lookup_table_holders(conn, relation, conflicting_modes(mode), exclude=[pid])
        if holders:
            self._holders_seen[key] = holders
            return holders
        return self._holders_seen.get(key, ())

    def _cancel(self, conn: psycopg.Connection[Any], pid: int, why: str) -> None:
        log.warning("cancelling the query of %s (pid %d): %s", self.application_name, pid, why)
        conn.execute("SELECT pg_cancel_backend(%s)", (pid,))
