"""What backupbot reads from a team's database besides the dump itself.

`SnapshotSession` opens a repeatable-read, read-only transaction and exports its snapshot
so pg_dump (`--snapshot`) sees exactly what the row counts here saw. Where the server
does not allow exporting a snapshot, it falls back to counting in its own transaction
and says so (`consistent = False`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.pgschema import schema_fingerprint
from backupbot.storage.prisma import prisma_facts

log = logging.getLogger(__name__)

_TABLES = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""


def count_rows(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """`schema.table` -> exact row count for every user table (extensions' tables excluded)."""
    counts: dict[str, int] = {}
    for schema, table in conn.execute(_TABLES).fetchall():
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        row = conn.execute(query).fetchone()
        counts[f"{schema}.{table}"] = int(row[0]) if row else 0
    return counts


@dataclass(frozen=True)
class ServerInfo:
    version_num: int
    version: str

    @property
    def major(self) -> int:
        return self.version_num // 10000


class SnapshotSession:
    """A held snapshot plus the facts taken inside it. Close it after pg_dump finishes."""

    def __init__(self, conn_info: ConnInfo) -> None:
        self._conn = conn_info.connect(autocommit=False)
        self._closed = threading.Event()
        self.server = ServerInfo(
            version_num=self._conn.info.server_version,
            version=str(self._conn.info.parameter_status("server_version") or ""),
        )
        self.snapshot: str | None = None
        self._conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        self._conn.read_only = True
        try:
            row = self._conn.execute("SELECT pg_export_snapshot()").fetchone()
            self.snapshot = str(row[0]) if row else None
        except psycopg.Error as exc:
            log.warning("cannot export a snapshot; row counts taken separately: %s", exc)
            self._conn.rollback()

    @property
    def consistent(self) -> bool:
        """Whether counts and dump share one snapshot."""
        return self.snapshot is not None

    def row_counts(self) -> dict[str, int]:
        return count_rows(self._conn)

    def prisma_history(self) -> dict[str, Any] | None:
        """Prisma's migration history in the snapshot (`storage/prisma.py`), or None."""
        return prisma_facts(self._conn)

    def schema(self) -> dict[str, Any]:
        """The schema fingerprint (`storage/pgschema.py`) in the snapshot. Take it before
        pg_dump starts: sequences are outside any snapshot, and values read first are never
        above the ones pg_dump then saves."""
        return schema_fingerprint(self._conn)

    def interrupt(self) -> None:
        """Cancel the session's queries from now until it is closed (from any thread):
        the one running now, and any another thread starts after this call."""

        def keep_cancelling() -> None:
            while True:
                try:
                    self._conn.cancel_safe(timeout=5)
                except psycopg.Error:
                    log.debug("cancelling the snapshot session's query failed", exc_info=True)
                if self._closed.wait(0.5):
                    return

        threading.Thread(target=keep_cancelling, name="snapshot-cancel", daemon=True).start()

    def close(self) -> None:
        try:
            self._conn.rollback()
        finally:
            self._closed.set()
            self._conn.close()
