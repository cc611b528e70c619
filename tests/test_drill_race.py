"""One running drill per database, decided by the state database (a unique index over
running rows, migration 0013): eight threads starting a drill of one database at once,
on SQLite and on PostgreSQL state, give one drill; and the migration keeps the newest of
drills that were already running twice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from backupbot.storage.drills import DrillLog, new_drill_id
from backupbot.storage.state import MIGRATIONS, create_state_engine, migrate

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path, pg: Any) -> Engine:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        name = f"race_{new_drill_id()}"
        url = pg.create_database(name).replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_state_engine(url)
    migrate(engine)
    return engine


def _start(log: DrillLog, results: list[bool], gate: threading.Barrier) -> None:
    drill_id = new_drill_id()
    gate.wait()
    record = log.create(
        drill_id,
        database="app",
        scratch_db=f"backupbot_drill_app_{drill_id}",
        actor="U0ALICE",
        rto_minutes=30,
        backup_id=None,
        now=T0,
    )
    results.append(record is not None)


def test_drills_started_at_once_give_one_running_drill(engine: Engine) -> None:
    log = DrillLog(engine)
    results: list[bool] = []
    gate = threading.Barrier(8)
    threads = [threading.Thread(target=_start, args=(log, results, gate)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(results) == [False] * 7 + [True]
    assert [r.status for r in log.recent("app", 20)] == ["running"]
    # Once it finishes, the next drill of the database starts.
    [running] = log.recent("app", 1)
    assert log.finish(running.id, "passed", T0, result={}, error=None, total_seconds=1.0)
    after: list[bool] = []
    _start(log, after, threading.Barrier(1))
    assert after == [True]
    engine.dispose()


def test_the_migration_keeps_the_newest_of_drills_already_running_twice(tmp_path: Path) -> None:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0012")
        for k, drill_id in enumerate(("d_old", "d_new")):
            started = (T0 + timedelta(minutes=k)).replace(tzinfo=None)
            conn.execute(
                text(
                    "INSERT INTO drills (id, database, scratch_db, scratch_dropped, status, "
                    "actor, started_at, heartbeat_at, rto_minutes, result) VALUES (:id, "
                    "'app', :s, 0, 'running', 'scheduler', :t, :t, 30, '{}')"
                ),
                {"id": drill_id, "s": f"backupbot_drill_app_{drill_id}", "t": started},
            )
    migrate(engine)
    log = DrillLog(engine)
    assert log.get("d_new").status == "running"
    old = log.get("d_old")
    assert old.status == "failed" and "started at the same time" in (old.error or "")
    engine.dispose()
