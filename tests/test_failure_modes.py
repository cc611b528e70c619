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

import psycopg
import pytest

from backupbot.bot.composition import build_services
from backupbot.errors import BackupAlreadyRunning
from backupbot.storage.catalog import FAILED, BackupCatalog
from backupbot.storage.state import create_state_engine, migrate
from tests.conftest import CHANNEL, PG_PASSWORD, free_port, make_settings


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


def _restore_services(tmp_path: Path, url: str, **restore: Any) -> Any:
    settings = make_settings(
        state_url=f"sqlite:///{tmp_path}/state.db",
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=[{"name": "app", "url": url}],
        extra={"restore": restore} if restore else None,
    )
    return build_services(settings, {})


def test_restore_with_no_room_to_unpack_fails_before_touching_anything(
    pg: Any, sample_db: dict[str, Any], tmp_path: Path
) -> None:
    with tiny_disk(tmp_path / "work", "8k") as work:
        services = _restore_services(tmp_path, sample_db["url"], work_dir=str(work))
        services.backups.backup_now("app", "UALICE")
        record = services.restores.request("app", "latest", requester="UALICE", into="no_room")
        assert services.restores.click(record.id, "approve", "UAPPROVER").start_restore
        final = services.restores.execute(record.id)
        services.close()
        assert list(work.iterdir()) == []
    assert final.status == "failed" and "Not enough disk space" in final.error
    assert final.result["target_state"] == "no_room was not touched"
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(pg.url("no_room")).close()


def test_a_target_server_that_dies_after_approval_fails_the_restore_with_a_clear_state(
    sample_db: dict[str, Any], tmp_path: Path
) -> None:
    services = _restore_services(tmp_path, sample_db["url"])
    services.backups.backup_now("app", "UALICE")
    record = services.restores.request("app", "latest", requester="UALICE", into="never_made")
    assert services.restores.click(record.id, "approve", "UAPPROVER").start_restore
    services.close()
    # The same state and store, but the server is gone by the time the restore runs.
    dead = f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{free_port()}/{sample_db['name']}"
    services = _restore_services(tmp_path, dead)
    final = services.restores.execute(record.id)
    services.close()
    assert final.status == "failed"
    assert "Could not reach the database server" in final.error
    assert PG_PASSWORD not in final.error
    assert final.result["target_state"] == "never_made was not touched"
    assert final.result["failed_stage"] == "download"


def test_a_restore_whose_process_died_is_failed_at_start_up_and_frees_its_target(
    sample_db: dict[str, Any], tmp_path: Path
) -> None:
    from tests.conftest import ManualClock

    clock = ManualClock()
    settings = make_settings(
        state_url=f"sqlite:///{tmp_path}/state.db",
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=[{"name": "app", "url": sample_db["url"]}],
    )
    services = build_services(settings, {}, clock=clock)
    services.backups.backup_now("app", "UALICE")
    record = services.restores.request("app", "latest", requester="UALICE", into="orphan")
    assert services.restores.click(record.id, "approve", "UAPPROVER").start_restore
    # ...and the process dies before executing it. 45 s on, it is abandoned.
    clock.advance(seconds=40)
    assert services.restores.fail_abandoned() == []
    clock.advance(seconds=6)
    [failed] = services.restores.fail_abandoned()
    assert failed.id == record.id and failed.status == "failed"
    assert "stopped while this restore was running" in failed.error
    again = services.restores.request("app", "latest", requester="UALICE", into="orphan")
    assert again.status == "pending"
    actions = [i.action for i in services.incidents.recent(3)]
    assert actions[:2] == ["restore.requested", "restore.abandoned"]
    services.close()


@pytest.mark.parametrize("state_url", ["sqlite", "postgresql"], indirect=True)
def _belongs_to_others(diff: Any) -> bool:
    item = diff[1] if isinstance(diff, tuple) else diff[0][1]
    table = getattr(item, "table", None)
    name = getattr(item, "name", "") if table is None else table.name
    return name == "apscheduler_jobs" or name.startswith("procrastinate_")


def test_migrations_build_exactly_the_schema_the_models_describe(state_url: str) -> None:
    """The hand-written migrations and the SQLAlchemy models agree: no missing tables,
    columns or type drift (autogenerate finds nothing to do)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from backupbot.storage.models import Base

    engine = create_state_engine(state_url)
    migrate(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": False}
        )
        diff = [
            d
            for d in compare_metadata(context, Base.metadata)
            # tables that belong to others (APScheduler's job store, procrastinate's queue)
            if not _belongs_to_others(d)
        ]
    engine.dispose()
    assert diff == []
