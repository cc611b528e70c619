"""Status rules and catalog transitions, on a real (SQLite) state database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from backupbot.commands.status import database_status, status_report
from backupbot.errors import BackupAlreadyRunning
from backupbot.storage.catalog import FAILED, RUNNING, SUCCEEDED, BackupCatalog, SuccessDetails
from backupbot.storage.state import create_state_engine, migrate

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DETAILS = SuccessDetails(
    artifact_key="app/a.dump.zst",
    manifest_key="app/a.manifest.json",
    location="/tmp/backups/app/a.dump.zst",
    raw_size=2048,
    stored_size=1024,
    sha256="0" * 64,
    compression="zstd-3",
    server_version="16.2",
    pg_dump_version="16.2",
    manifest={"row_counts": {"public.users": 3}},
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def catalog(engine: Engine) -> BackupCatalog:
    return BackupCatalog(engine)


def succeed_at(catalog: BackupCatalog, when: datetime, database: str = "app") -> str:
    rec = catalog.start(database, "scheduler", None, "local", when)
    assert catalog.succeed(rec.id, when + timedelta(minutes=2), DETAILS)
    return rec.id


def fail_at(catalog: BackupCatalog, when: datetime, error: str, database: str = "app") -> str:
    rec = catalog.start(database, "U0ALICE", None, "local", when)
    assert catalog.fail(rec.id, when + timedelta(minutes=1), error)
    return rec.id


# --- status rules ----------------------------------------------------------------------------


def test_database_without_any_backup_gets_a_warning(catalog: BackupCatalog) -> None:
    s = database_status(catalog, "app", "neon", NOW)

    assert not s.healthy
    assert [str(w) for w in s.warnings] == ["No verified backup yet. Run /backup now app."]
    assert s.last_success is None
    assert s.last_failure is None
    assert s.running is None
    assert s.kept == 0
    assert s.provider == "neon"


def test_success_25_hours_ago_is_healthy(catalog: BackupCatalog) -> None:
    backup_id = succeed_at(catalog, NOW - timedelta(hours=25))

    s = database_status(catalog, "app", "generic", NOW)

    assert s.healthy
    assert s.warnings == []
    assert s.last_success is not None
    assert s.last_success.id == backup_id
    assert s.last_success.started_at == NOW - timedelta(hours=25)
    assert s.kept == 1


def test_success_27_hours_ago_warns_about_the_26_hour_window(catalog: BackupCatalog) -> None:
    succeed_at(catalog, NOW - timedelta(hours=27))

    s = database_status(catalog, "app", "generic", NOW)

    assert not s.healthy
    [warning] = [str(w) for w in s.warnings]
    assert "No verified backup in the last 26 h" in warning
    assert "27 h ago" in warning
    assert "/backup now app" in warning


def test_stale_window_follows_the_given_stale_after(catalog: BackupCatalog) -> None:
    succeed_at(catalog, NOW - timedelta(hours=5))

    s = database_status(catalog, "app", "generic", NOW, stale_after=timedelta(hours=4))

    [warning] = [str(w) for w in s.warnings]
    assert "last 4 h" in warning


def test_failure_newer_than_last_success_warns_with_its_error(catalog: BackupCatalog) -> None:
    succeed_at(catalog, NOW - timedelta(hours=10))
    failure_id = fail_at(catalog, NOW - timedelta(hours=1), "pg_dump: connection refused")

    s = database_status(catalog, "app", "generic", NOW)

    assert [str(w) for w in s.warnings] == [
        "The latest backup attempt failed: pg_dump: connection refused"
    ]
    assert s.last_failure is not None
    assert s.last_failure.id == failure_id


def test_failure_older_than_last_success_does_not_warn(catalog: BackupCatalog) -> None:
    fail_at(catalog, NOW - timedelta(hours=10), "old trouble")
    succeed_at(catalog, NOW - timedelta(hours=1))

    s = database_status(catalog, "app", "generic", NOW)

    assert s.healthy
    assert s.last_failure is not None
    assert s.last_failure.error == "old trouble"


def test_only_failures_warn_about_both_missing_backup_and_the_failure(
    catalog: BackupCatalog,
) -> None:
    fail_at(catalog, NOW - timedelta(hours=1), "disk full")

    s = database_status(catalog, "app", "generic", NOW)

    assert len(s.warnings) == 2
    assert str(s.warnings[0]).startswith("No verified backup yet.")
    assert str(s.warnings[1]) == "The latest backup attempt failed: disk full"


def test_kept_counts_only_succeeded_backups(catalog: BackupCatalog) -> None:
    for hours in (30, 20, 10):
        succeed_at(catalog, NOW - timedelta(hours=hours))
    fail_at(catalog, NOW - timedelta(hours=5), "boom")
    catalog.start("app", "U0ALICE", None, "local", NOW - timedelta(minutes=1))
    succeed_at(catalog, NOW - timedelta(hours=2), database="billing")

    s = database_status(catalog, "app", "generic", NOW)

    assert s.kept == 3
    assert s.running is not None
    assert s.running.status == RUNNING


def test_status_report_keeps_configuration_order(catalog: BackupCatalog) -> None:
    succeed_at(catalog, NOW - timedelta(hours=1), database="billing")

    report = status_report(catalog, [("billing", "neon"), ("app", "render")], NOW)

    assert [(s.name, s.provider, s.healthy) for s in report] == [
        ("billing", "neon", True),
        ("app", "render", False),
    ]


# --- catalog transitions --------------------------------------------------------------------


def test_second_start_while_running_names_the_running_backup_and_actor(
    catalog: BackupCatalog,
) -> None:
    first = catalog.start("app", "U0ALICE", "pre-deploy", "local", NOW)

    with pytest.raises(BackupAlreadyRunning) as info:
        catalog.start("app", "U0BOB", None, "local", NOW + timedelta(minutes=1))

    err = info.value
    assert err.started_by == "U0ALICE"
    assert err.backup_id == first.id
    assert err.database == "app"
    assert "U0ALICE" in str(err)
    assert first.id in str(err)
    assert "2024-05-01 12:00 UTC" in str(err)
    assert catalog.running("app") == first


def test_running_backup_of_another_database_does_not_block(catalog: BackupCatalog) -> None:
    catalog.start("app", "U0ALICE", None, "local", NOW)

    other = catalog.start("billing", "U0BOB", None, "local", NOW)

    assert other.status == RUNNING
    assert other.database == "billing"


def _alive(_owner: str | None) -> bool:
    return False


def test_a_backup_with_a_stale_heartbeat_is_taken_over_and_a_new_one_proceeds(
    catalog: BackupCatalog,
) -> None:
    dead = catalog.start("app", "U0ALICE", None, "local", NOW - timedelta(seconds=46))
    assert catalog.claim(dead.id, "elsewhere:1:x", NOW - timedelta(seconds=46))

    [found] = catalog.abandoned(NOW, stale_after=timedelta(seconds=45), is_dead=_alive)
    assert found.id == dead.id
    assert catalog.take_over(found, NOW, "The bot stopped while this backup ran.")
    fresh = catalog.start("app", "U0BOB", None, "local", NOW)

    assert fresh.status == RUNNING and catalog.running("app") == fresh
    old = catalog.get(dead.id)
    assert (old.status, old.finished_at, old.error) == (
        FAILED,
        NOW,
        "The bot stopped while this backup ran.",
    )


def test_a_takeover_loses_to_an_owner_that_beat_after_it_looked(catalog: BackupCatalog) -> None:
    slow = catalog.start("app", "U0ALICE", None, "local", NOW - timedelta(minutes=5))
    assert catalog.claim(slow.id, "elsewhere:1:x", NOW - timedelta(minutes=5))
    [seen] = catalog.abandoned(NOW, stale_after=timedelta(seconds=45), is_dead=_alive)
    catalog.pulse([slow.id], NOW)  # the owner was alive after all

    assert catalog.take_over(seen, NOW, "stopped") is False
    assert catalog.get(slow.id).status == RUNNING
    assert catalog.abandoned(NOW, stale_after=timedelta(seconds=45), is_dead=_alive) == []


def test_a_waiting_backup_has_no_heartbeat_to_go_stale(catalog: BackupCatalog) -> None:
    waiting = catalog.start("app", "U0ALICE", None, "local", NOW - timedelta(hours=1))

    assert catalog.abandoned(NOW, stale_after=timedelta(seconds=45), is_dead=_alive) == []
    assert catalog.claim(waiting.id, "w:1:x", NOW) and not catalog.claim(waiting.id, "w:2:y", NOW)


def test_a_backup_whose_owner_is_dead_is_abandoned_without_waiting(catalog: BackupCatalog) -> None:
    rec = catalog.start("app", "U0ALICE", None, "local", NOW, owner="host:1:dead")

    found = catalog.abandoned(NOW, stale_after=timedelta(hours=1), is_dead=lambda o: o == rec.owner)

    assert [r.id for r in found] == [rec.id]


def test_running_backup_with_recent_heartbeat_is_not_taken_over(catalog: BackupCatalog) -> None:
    alive = catalog.start("app", "U0ALICE", None, "local", NOW - timedelta(minutes=30))
    catalog.pulse([alive.id], NOW - timedelta(seconds=44))
    catalog.progress(alive.id, "dumping", 4096)

    assert catalog.abandoned(NOW, stale_after=timedelta(seconds=45), is_dead=_alive) == []
    with pytest.raises(BackupAlreadyRunning):
        catalog.start("app", "U0BOB", None, "local", NOW)
    assert catalog.get(alive.id).status == RUNNING
    assert catalog.get(alive.id).progress_bytes == 4096


def test_succeed_after_fail_returns_false_and_keeps_the_failure(catalog: BackupCatalog) -> None:
    rec = catalog.start("app", "U0ALICE", None, "local", NOW)
    assert catalog.fail(rec.id, NOW + timedelta(minutes=1), "verification failed")

    assert catalog.succeed(rec.id, NOW + timedelta(minutes=2), DETAILS) is False

    stored = catalog.get(rec.id)
    assert stored.status == FAILED
    assert stored.error == "verification failed"
    assert stored.sha256 is None
    assert stored.finished_at == NOW + timedelta(minutes=1)


def test_fail_after_succeed_returns_false_and_keeps_the_success(catalog: BackupCatalog) -> None:
    rec = catalog.start("app", "U0ALICE", None, "local", NOW)
    assert catalog.succeed(rec.id, NOW + timedelta(minutes=1), DETAILS)

    assert catalog.fail(rec.id, NOW + timedelta(minutes=2), "late failure") is False

    stored = catalog.get(rec.id)
    assert stored.status == SUCCEEDED
    assert stored.error is None
    assert stored.sha256 == DETAILS.sha256


def test_finished_backup_releases_the_lock_for_the_next_one(catalog: BackupCatalog) -> None:
    first = catalog.start("app", "U0ALICE", None, "local", NOW)
    catalog.succeed(first.id, NOW + timedelta(minutes=1), DETAILS)

    second = catalog.start("app", "U0BOB", None, "local", NOW + timedelta(minutes=2))

    assert second.status == RUNNING
    assert catalog.running("app") == second


def test_succeeded_record_round_trips_details_and_utc_times(catalog: BackupCatalog) -> None:
    rec = catalog.start("app", "U0ALICE", "pre-deploy", "local", NOW)
    catalog.succeed(rec.id, NOW + timedelta(minutes=3), DETAILS)

    stored = catalog.get(rec.id)

    assert stored.status == SUCCEEDED
    assert stored.label == "pre-deploy"
    assert stored.started_at == NOW
    assert stored.started_at.tzinfo is not None
    assert stored.duration == timedelta(minutes=3)
    assert stored.manifest == DETAILS.manifest
    assert stored.stored_size == DETAILS.stored_size
