"""What the provider adapter tests share: a live database and two snapshot databases
on the test cluster (the stand-ins copy a snapshot when they restore), and helpers to
follow an operation and to read a restored database's row counts."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from backupbot.devkit.providers.databases import ClusterDatabases
from backupbot.devkit.sample_data import load_sample_data, row_counts
from backupbot.storage.providers.contract import ProviderOperation


@dataclass
class World:
    pg: Any
    databases: ClusterDatabases
    live: str  # the configured database's name
    old_at: datetime
    new_at: datetime
    old_counts: dict[str, int]
    new_counts: dict[str, int]
    key: str = field(default_factory=lambda: "key-" + secrets.token_hex(12))
    sleeps: list[float] = field(default_factory=list)

    @property
    def live_url(self) -> str:
        return str(self.pg.url(self.live))

    def drop_all(self) -> None:
        """Drop every database of this world (its snapshots, the live one and every
        one a stand-in's restore created: they all start with the world's prefix)."""
        prefix = self.databases.prefix
        with psycopg.connect(self.pg.url("postgres"), autocommit=True) as conn:
            names = [
                row[0]
                for row in conn.execute(
                    "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (prefix,)
                )
            ]
            for name in names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def make_world(pg: Any, provider: str) -> World:
    """Snapshots at now-2h (scale 1) and now-30min (scale 2); the live database is a
    copy of the newer one."""
    tag = f"{provider}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{secrets.token_hex(3)}"
    old, new, live = f"{tag}_snap_old", f"{tag}_snap_new", f"{tag}_live"
    old_counts = load_sample_data(pg.create_database(old), scale=1)
    new_counts = load_sample_data(pg.create_database(new), scale=2)
    now = datetime.now(UTC).replace(microsecond=0)
    old_at, new_at = now - timedelta(hours=2), now - timedelta(minutes=30)
    databases = ClusterDatabases(pg.url("postgres"), {old_at: old, new_at: new}, prefix=tag)
    databases.copy(new, live)
    return World(pg, databases, live, old_at, new_at, old_counts, new_counts)


def follow(
    status: Callable[[str], ProviderOperation], first: ProviderOperation, timeout: float = 60
) -> tuple[ProviderOperation, list[str]]:
    """Poll until the operation leaves `running`; the states seen on the way."""
    seen, operation = [first.state], first
    deadline = time.monotonic() + timeout
    while operation.state == "running":
        assert time.monotonic() < deadline, f"operation still running: {operation}"
        operation = status(operation.id)
        seen.append(operation.state)
    return operation, seen


def counts_at(url: str | None) -> dict[str, int]:
    assert url is not None, "the operation gave no connection URL"
    return row_counts(url)
