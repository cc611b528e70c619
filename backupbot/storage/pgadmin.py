"""Server-level operations on a restore target: look at it, create it, drop it.

The maintenance connection goes to the target's server, with the credentials of the URL
the target came from (the source's, or a `targets:` entry's), to the `postgres` database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from backupbot.errors import DatabaseUnreachable
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.pginspect import count_rows
from backupbot.storage.prisma import prisma_facts

MAINTENANCE_DB = "postgres"


@dataclass(frozen=True)
class TargetFacts:
    """What a target database holds now; `exists=False` means it will be created."""

    exists: bool
    size_bytes: int = 0
    row_counts: dict[str, int] | None = None
    prisma: dict[str, Any] | None = None

    @property
    def tables(self) -> int:
        return len(self.row_counts or {})

    @property
    def has_data(self) -> bool:
        """Anything a restore would overwrite: a user table (even an empty one)."""
        return self.exists and self.tables > 0

    def as_json(self) -> dict[str, Any]:
        return {
            "exists": self.exists,
            "size_bytes": self.size_bytes,
            "row_counts": self.row_counts,
            "prisma": self.prisma,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TargetFacts:
        return cls(
            exists=bool(data.get("exists")),
            size_bytes=int(data.get("size_bytes") or 0),
            row_counts=data.get("row_counts"),
            prisma=data.get("prisma"),
        )


def _maintenance(target: ConnInfo) -> psycopg.Connection[Any]:
    conn = target.with_dbname(MAINTENANCE_DB)
    try:
        return conn.connect(autocommit=True)
    except DatabaseUnreachable as exc:
        if f"no database {MAINTENANCE_DB!r}" not in str(exc):
            raise
        # Some providers hide `postgres`; `template1` is always there.
        return target.with_dbname("template1").connect(autocommit=True)


def server_major(target: ConnInfo) -> int:
    """The major version of the target's server (it picks the matching pg_restore)."""
    with _maintenance(target) as conn:
        return int(conn.info.server_version) // 10000


def database_exists(target: ConnInfo) -> bool:
    with _maintenance(target) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (target.dbname,)
        ).fetchone()
        return row is not None


def inspect_target(target: ConnInfo) -> TargetFacts:
    """Size, per-table row counts and Prisma migrations of `target`, or `exists=False`."""
    if not database_exists(target):
        return TargetFacts(exists=False)
    with target.connect(autocommit=True) as conn:
        size_row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return TargetFacts(
            exists=True,
            size_bytes=int(size_row[0]) if size_row else 0,
            row_counts=count_rows(conn),
            prisma=prisma_facts(conn),
        )


def create_database(target: ConnInfo) -> None:
    """`CREATE DATABASE target`, in words a user can act on when not allowed to."""
    with _maintenance(target) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.dbname)))
        except psycopg.errors.InsufficientPrivilege:
            raise DatabaseUnreachable(
                f"User {target.user!r} may not create databases on {target.host}:{target.port}. "
                f"Create {target.dbname!r} yourself (empty) and restore with --into, or grant "
                "CREATEDB."
            ) from None


def drop_database(target: ConnInfo) -> None:
    """Drop `target`, disconnecting its sessions (PostgreSQL 13+)."""
    with _maintenance(target) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target.dbname))
        )
