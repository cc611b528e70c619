"""Failures that must leave nothing that looks like a good backup, and the guarded
one-backup-per-database rule under real concurrency on both state databases."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backupbot.errors import BackupAlreadyRunning
from backupbot.storage.catalog import FAILED, BackupCatalog
from backupbot.storage.state import create_state_engine, migrate
from tests.conftest import CHANNEL, make_settings


@contextlib.contextmanager
def tiny_disk(path: Path, size: str = "256k") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(
            f"could not mount a small tmpfs to simulate a full disk ({done.stderr.strip()}); "
            "run the tests as root (CI does)",
            pytrace=False,
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_fails_cleanly_with_a_plain_message(
    pg: Any, tmp_path: Path, bot_factory: Any
) -> None:
    url = pg.create_database("bulky")
    pg.execute(
        "CREATE TABLE blob AS SELECT g, md5(g::text) || md5((g * 7)::text) AS t "
        "FROM generate_series(1, 60000) g",
        "bulky",
    )
    with tiny_disk(tmp_path / "disk") as disk:
        settings = make_settings(
            state_url=f"sqlite:///{tmp_path}/s.db",
            storage={"local": {"path": str(disk)}},
            databases=[{"name": "app", "url": url}],
        )
        bot = bot_factory(settings)
        bot.signer.slash_command("UALICE", "now app")
        bot.wait_idle()
        record = bot.services.catalog.latest("app")
        assert record.status == FAILED
        assert "The backup disk is full" in record.error
        assert [p for p in disk.rglob("*") if p.is_file()] == []
        assert "disk is full" in bot.standin.messages(CHANNEL)[-1].text
    pg.drop_database("bulky")


def test_only_one_of_many_simultaneous_backups_of_a_database_starts(state_url: str) -> None:
    engine = create_state_engine(state_url)
    migrate(engine)
    catalog = BackupCatalog(engine)
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    barrier = threading.Barrier(6)
    started: list[str] = []
    refused: list[str] = []

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            started.append(catalog.start("app", f"U{i}", None, "local", now).id)
        except BackupAlreadyRunning as exc:
            refused.append(exc.backup_id)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(started) == 1 and len(refused) == 5
    assert set(refused) == set(started)
    engine.dispose()


def test_incident_log_refuses_updates_and_deletes(state_url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from backupbot.storage.incidents import IncidentLog

    engine = create_state_engine(state_url)
    migrate(engine)
    IncidentLog(engine).record(
        at=datetime.now(UTC), actor="U1", action="backup.started", outcome="ok"
    )
    for statement in ("UPDATE incidents SET outcome = 'forged'", "DELETE FROM incidents"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    assert [i.outcome for i in IncidentLog(engine).recent()] == ["ok"]
    engine.dispose()


def test_head_revision_constant_matches_the_newest_migration() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from backupbot.storage.state import HEAD_REVISION, MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == HEAD_REVISION
