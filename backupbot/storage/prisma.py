"""Prisma's migration history, read from `_prisma_migrations` as Prisma reads it.

Prisma Migrate keeps one row per attempt to apply a migration (a migration marked rolled
back and applied again has two rows). A row is, as `prisma migrate status` sees it:

- applied: `finished_at` set and `rolled_back_at` null;
- failed: `finished_at` null and `rolled_back_at` null (`prisma migrate deploy` stops on it,
  error P3009, until it is resolved);
- rolled back: `rolled_back_at` set (`prisma migrate resolve --rolled-back NAME` sets it to
  now() on the failed rows of NAME, and is refused for a migration that is not failed);
  kept as an audit trail, ignored otherwise.

Prisma applies migrations in the order of their directory names, which are timestamp
prefixed (`20250101090000_init`), so the head, the migration the schema is at, is the
applied migration with the greatest name (the newest `finished_at` breaks a tie).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import psycopg
from psycopg import sql

APPLIED: Final = "applied"
FAILED: Final = "failed"
ROLLED_BACK: Final = "rolled_back"
State = Literal["applied", "failed", "rolled_back"]

_PRISMA_TABLE = """
SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = '_prisma_migrations' AND c.relkind = 'r'
ORDER BY (n.nspname = 'public') DESC, n.nspname LIMIT 1
"""

_ROWS = (
    "SELECT migration_name, started_at, finished_at, rolled_back_at, applied_steps_count, "
    "checksum FROM {}._prisma_migrations ORDER BY migration_name, started_at"
)


@dataclass(frozen=True)
class Migration:
    """One row of `_prisma_migrations` (one attempt to apply a migration)."""

    name: str
    started_at: datetime | None
    finished_at: datetime | None
    rolled_back_at: datetime | None
    applied_steps_count: int
    checksum: str

    @property
    def state(self) -> State:
        if self.rolled_back_at is not None:
            return ROLLED_BACK
        return APPLIED if self.finished_at is not None else FAILED


def prisma_schema(conn: psycopg.Connection[Any]) -> str | None:
    """The schema holding `_prisma_migrations` (`public` first), or None."""
    row = conn.execute(_PRISMA_TABLE).fetchone()
    return str(row[0]) if row else None


def read_migrations(conn: psycopg.Connection[Any]) -> list[Migration] | None:
    """Every row of `_prisma_migrations` by name, then attempt; None without the table."""
    schema = prisma_schema(conn)
    if schema is None:
        return None
    query = sql.SQL(_ROWS).format(sql.Identifier(schema))
    return [
        Migration(str(r[0]), r[1], r[2], r[3], int(r[4] or 0), str(r[5] or ""))
        for r in conn.execute(query).fetchall()
    ]


def head_of(migrations: list[Migration]) -> Migration | None:
    """The applied migration the schema is at: the greatest name, newest finish."""
    applied = [m for m in migrations if m.state == APPLIED]
    if not applied:
        return None
    return max(applied, key=lambda m: (m.name, m.finished_at or datetime.min))


def history_facts(migrations: list[Migration]) -> dict[str, Any]:
    """What manifests and restore records keep: the head and the names in each state."""
    head = head_of(migrations)

    def named(state: str) -> list[str]:
        return sorted({m.name for m in migrations if m.state == state})

    return {
        "migration_name": head.name if head else None,
        "finished_at": head.finished_at.isoformat() if head and head.finished_at else None,
        "checksum": head.checksum if head else None,
        "applied": named(APPLIED),
        "failed": named(FAILED),
        "rolled_back": named(ROLLED_BACK),
    }


def prisma_facts(conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
    """`history_facts` of the database, or None when it has no `_prisma_migrations`."""
    migrations = read_migrations(conn)
    return None if migrations is None else history_facts(migrations)
