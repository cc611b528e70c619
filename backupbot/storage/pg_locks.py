"""Who holds a lock: the sessions a lock wait is blocked by, as pg_stat_activity and
pg_locks show them, in words for a failure message."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from backupbot.errors import BackupbotError
from backupbot.storage.pg_sessions import shown_query, with_session_settings
from backupbot.storage.pgconn import ConnInfo

log = logging.getLogger(__name__)


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
        shown = shown_query(self.query) if self.query else "not visible to this user"
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


def lookup_holders(conn: psycopg.Connection[Any], pids: list[int]) -> tuple[LockHolder, ...]:
    """The sessions with process ids `pids`, oldest transaction first."""
    rows = conn.execute(_HOLDERS_SQL, (pids,)).fetchall()
    return tuple(LockHolder(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows)


def lookup_table_holders(
    conn: psycopg.Connection[Any], table: str, modes: Iterable[str], exclude: Iterable[int] = ()
) -> tuple[LockHolder, ...]:
    """The sessions (other than `exclude`) holding a lock in one of `modes` on `table`."""
    found = conn.execute(_TABLE_HOLDERS_SQL, (table, list(modes), list(exclude))).fetchall()
    pids = [int(r[0]) for r in found]
    return lookup_holders(conn, pids) if pids else ()


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
            return lookup_table_holders(c, table, modes)
    except (BackupbotError, psycopg.Error) as exc:
        log.warning("could not look up who holds a lock on %s: %s", table, exc)
        return ()
