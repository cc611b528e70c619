"""A `_prisma_migrations` table built and changed as Prisma Migrate does it, for tests.

The DDL is Prisma's for PostgreSQL (prisma-engines, `sql-migration-connector`; the same
as `backupbot/devkit/sample_data.sql`). The operations do to the table what Prisma's do
(https://www.prisma.io/docs/cli/migrate/resolve, and prisma-engines'
`mark_migration_rolled_back` / `mark_migration_applied`):

- `deploy` (a migration `prisma migrate deploy` applies): a row is inserted when it
  starts (`started_at` now, `finished_at` null); on success `finished_at` and
  `applied_steps_count` are set; on failure the row stays unfinished, with `logs`;
- `resolve --rolled-back NAME`: refused (P3011) when NAME has no row, refused (P3012)
  when none of its rows is failed; else `rolled_back_at = now()` on its failed rows;
- `resolve --applied NAME`: refused (P3008) when NAME is applied already; its failed rows
  are marked rolled back, and a new row records it applied (`finished_at` now, 0 steps).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import psycopg

PRISMA_DDL = """
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)
"""


class PrismaRefused(Exception):
    """What Prisma answers with an error code (P3008, P3011, P3012)."""


def _checksum(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def create_table(conn: psycopg.Connection[Any]) -> None:
    conn.execute(PRISMA_DDL)


def deploy(conn: psycopg.Connection[Any], name: str, sql: str = "", *, fails: bool = False) -> None:
    """`prisma migrate deploy` of one migration: its SQL, then the bookkeeping."""
    row_id = str(uuid.uuid4())
    conn.execute(
        'INSERT INTO "_prisma_migrations" (id, checksum, migration_name) VALUES (%s, %s, %s)',
        (row_id, _checksum(name), name),
    )
    if fails:
        conn.execute(
            'UPDATE "_prisma_migrations" SET logs = %s WHERE id = %s',
            ("Database error code: 42P07 relation already exists", row_id),
        )
        return
    if sql:
        conn.execute(sql)
    conn.execute(
        'UPDATE "_prisma_migrations" SET finished_at = now(), applied_steps_count = 1 '
        "WHERE id = %s",
        (row_id,),
    )


def _rows(conn: psycopg.Connection[Any], name: str) -> list[tuple[str, Any, Any]]:
    return conn.execute(
        'SELECT id, finished_at, rolled_back_at FROM "_prisma_migrations" '
        "WHERE migration_name = %s",
        (name,),
    ).fetchall()


def resolve_rolled_back(conn: psycopg.Connection[Any], name: str) -> None:
    """`prisma migrate resolve --rolled-back NAME`."""
    rows = _rows(conn, name)
    if not rows:
        raise PrismaRefused(f"P3011: Migration {name} cannot be rolled back: never applied")
    failed = [r[0] for r in rows if r[1] is None and r[2] is None]
    if not failed:
        raise PrismaRefused(f"P3012: Migration {name} cannot be rolled back: not failed")
    for row_id in failed:
        conn.execute(
            'UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE id = %s', (row_id,)
        )


def resolve_applied(conn: psycopg.Connection[Any], name: str) -> None:
    """`prisma migrate resolve --applied NAME`."""
    rows = _rows(conn, name)
    if any(r[1] is not None and r[2] is None for r in rows):
        raise PrismaRefused(f"P3008: The migration {name} is already recorded as applied")
    for row_id, finished, rolled_back in rows:
        if finished is None and rolled_back is None:
            conn.execute(
                'UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE id = %s', (row_id,)
            )
    conn.execute(
        'INSERT INTO "_prisma_migrations" (id, checksum, migration_name, finished_at, '
        "applied_steps_count) VALUES (%s, %s, %s, now(), 0)",
        (str(uuid.uuid4()), _checksum(name), name),
    )
