"""`transaction_pooled` asks the server whether a URL leads through a transaction pooler:
a real PgBouncer in transaction mode in front of the test cluster says yes, the cluster
itself says no."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backupbot.devkit.pgbouncer import PgBouncer, pgbouncer_program
from backupbot.storage.pg_pooling import transaction_pooled
from backupbot.storage.pg_sessions import with_session_settings
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.pginspect import SnapshotSession


def _need_pgbouncer() -> None:
    if pgbouncer_program() is None:
        pytest.fail("pgbouncer is not installed: apt-get install pgbouncer (make system-deps)")


@pytest.fixture(params=[1, 5], ids=["pool-of-1", "pool-of-5"])
def bouncer(request: pytest.FixtureRequest, pg: Any, tmp_path: Path) -> Iterator[PgBouncer]:
    _need_pgbouncer()
    with PgBouncer.in_front_of(pg.url(), tmp_path / "bouncer", pool_size=request.param) as b:
        yield b


def test_a_direct_connection_is_not_pooled(sample_db: dict[str, Any]) -> None:
    assert transaction_pooled(ConnInfo.from_url(sample_db["url"])) is False


def test_pgbouncer_in_transaction_mode_is_found(
    bouncer: PgBouncer, sample_db: dict[str, Any]
) -> None:
    assert transaction_pooled(ConnInfo.from_url(bouncer.url(sample_db["name"]))) is True


def test_an_unshared_session_counts_rows_without_holding_a_server_connection(
    bouncer: PgBouncer, sample_db: dict[str, Any]
) -> None:
    conn = ConnInfo.from_url(bouncer.url(sample_db["name"]))
    session = SnapshotSession(conn, share=False)
    try:
        assert session.snapshot is None and not session.consistent
        assert session.row_counts() == sample_db["counts"]
        # the pooler's only server connection is free for another client meanwhile
        with conn.connect(autocommit=True) as other:
            assert other.execute("SELECT 1").fetchone() == (1,)
    finally:
        session.close()


def test_a_pooler_refusing_startup_options_is_connected_without_them(
    bouncer: PgBouncer, sample_db: dict[str, Any]
) -> None:
    conn = with_session_settings(
        ConnInfo.from_url(bouncer.url(sample_db["name"])), lock_timeout="1000"
    )
    with conn.connect(autocommit=True) as db:
        assert db.execute("SELECT current_database()").fetchone() == (sample_db["name"],)
