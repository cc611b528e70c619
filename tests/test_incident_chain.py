"""The incident log's hash chain: intact as written, broken where someone edited,
removed or reordered a record behind the bot's back, and extended over records written
before the chain existed. Also the unit of work the records share with state changes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from backupbot.storage.catalog import BackupCatalog
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.state import MIGRATIONS, create_state_engine, migrate
from backupbot.storage.unit_of_work import atomic

T0 = datetime(2026, 11, 30, 2, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def _write(log: IncidentLog, n: int) -> None:
    for k in range(n):
        log.record(
            at=T0 + timedelta(seconds=k),
            actor="U0ALICE",
            action="backup.started",
            outcome="ok",
            database="app",
            details={"label": f"run {k}", "sizes": [k, 1.5], "nested": {"ü": None}},
        )


def _behind_the_bots_back(engine: Engine, sql: str) -> None:
    """What an intruder with the database's password could do: lift the triggers."""
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER incidents_no_update"))
        conn.execute(text("DROP TRIGGER incidents_no_delete"))
        conn.execute(text(sql))


def test_a_chain_written_by_the_bot_verifies(engine: Engine) -> None:
    log = IncidentLog(engine)
    _write(log, 5)

    check = log.verify(batch=2)  # batches smaller than the log: the walk crosses them

    assert check.intact and check.records == 5


def test_an_edited_record_breaks_the_chain_at_that_record(engine: Engine) -> None:
    log = IncidentLog(engine)
    _write(log, 5)
    _behind_the_bots_back(engine, "UPDATE incidents SET outcome = 'failed' WHERE id = 3")

    check = log.verify()

    assert (check.intact, check.first_broken_id, check.records) == (False, 3, 2)
    assert check.problem is not None and "edited" in check.problem


def test_a_removed_record_breaks_the_chain_at_the_next_one(engine: Engine) -> None:
    log = IncidentLog(engine)
    _write(log, 5)
    _behind_the_bots_back(engine, "DELETE FROM incidents WHERE id = 2")

    check = log.verify()

    assert (check.first_broken_id, check.records) == (3, 1)
    assert check.problem is not None and "removed" in check.problem


def test_records_written_concurrently_still_form_one_chain(engine: Engine) -> None:
    log = IncidentLog(engine)
    threads = [threading.Thread(target=_write, args=(log, 10)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    check = log.verify()

    assert check.intact and check.records == 40


def test_the_migration_chains_records_written_before_the_chain_existed(tmp_path: Path) -> None:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
        for k in range(3):
            conn.execute(
                text(
                    "INSERT INTO incidents (at, actor, action, outcome, details) "
                    "VALUES (:at, 'cli:root', 'backup.failed', 'failed', :d)"
                ),
                {"at": (T0 + timedelta(minutes=k)).replace(tzinfo=None), "d": '{"error": "x"}'},
            )
    migrate(engine)
    log = IncidentLog(engine)
    _write(log, 1)

    check = log.verify()

    assert check.intact and check.records == 4
    engine.dispose()


def test_a_state_change_and_its_record_commit_together_or_not_at_all(engine: Engine) -> None:
    catalog, log = BackupCatalog(engine), IncidentLog(engine)

    with pytest.raises(RuntimeError), atomic(engine):
        catalog.start("app", "U0ALICE", None, "local", T0)
        log.record(at=T0, actor="U0ALICE", action="backup.started", outcome="ok")
        raise RuntimeError("the process fails before the unit of work ends")

    assert catalog.running("app") is None and log.recent() == []
    with atomic(engine):
        record = catalog.start("app", "U0ALICE", None, "local", T0)
        log.record(at=T0, actor="U0ALICE", action="backup.started", outcome="ok")
    assert catalog.running("app") == record and len(log.recent()) == 1
