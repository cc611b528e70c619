"""`ProviderRunner` against a scripted adapter, on a real state database and the test
cluster: an operation that outlasts `operation_timeout_minutes` fails saying so (the
provider goes on), counts that differ from the backup are reported and the restore
succeeds, a table of the backup missing from the result fails it, and a stop while
following the operation says the provider goes on. No secret reaches a record."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import SecretStr

from backupbot.clock import SystemClock
from backupbot.commands.interrupts import KillSwitches
from backupbot.commands.provider_run import ProviderRunner
from backupbot.commands.restore_model import RestoreProgress
from backupbot.settings import DatabaseSettings
from backupbot.settings.providers import NeonSettings
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.providers.contract import ProviderOperation, RecoveryWindow
from backupbot.storage.restores import NewRestore, ProviderSource, RestoreRequests
from backupbot.storage.state import create_state_engine, migrate
from tests.conftest import PG_PASSWORD

KEY = "napi_secret_key_for_the_test"


class Scripted:
    """Answers `running` `polls` times, then `final`."""

    provider = "neon"

    def __init__(self, polls: int, final: ProviderOperation) -> None:
        self.polls, self.final, self.asked = polls, final, 0

    def recovery_window(self) -> RecoveryWindow:
        """A week of history: the restores' points (minutes ago) are inside it."""
        return RecoveryWindow(True, earliest=datetime.now(UTC) - timedelta(days=7))

    def restore(self, **_: Any) -> ProviderOperation:
        return ProviderOperation("op-1", "running", "creating branch", "rescue")

    def operation_status(self, operation_id: str) -> ProviderOperation:
        self.asked += 1
        if self.polls < 0 or self.asked <= self.polls:
            return ProviderOperation(operation_id, "running", "still going", "rescue")
        return self.final


def _setup(tmp_path: Path, adapter: Scripted, manifest: dict[str, int] | None) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    restores, incidents = RestoreRequests(engine), IncidentLog(engine)
    stops = KillSwitches()
    runner = ProviderRunner(
        restores=restores,
        incidents=incidents,
        clock=SystemClock(),
        safety_dump=lambda *_: None,
        interrupts=stops,
        adapters=lambda _db: cast(Any, adapter),
    )
    db = DatabaseSettings(
        name="app",
        url=SecretStr("postgresql://u:p@h/app"),
        provider="neon",
        neon=NeonSettings(
            api_key=SecretStr(KEY),
            project_id="p-1",
            branch_id="br-1",
            poll_seconds=0.05,
            operation_timeout_minutes=1,
        ),
    )
    now = datetime.now(UTC)
    preview = {
        "provider": {"needs_safety_dump": False},
        "manifest": None
        if manifest is None
        else {"backup_id": "1a2b3c4d", "started_at": now.isoformat(), "row_counts": manifest},
    }
    record = restores.create(
        NewRestore(
            database="app",
            backup_id="",
            mode="new",
            target_db="rescue",
            target_where="neon:rescue",
            requester="UALICE",
            reason=None,
            required_approvals=0,
            expires_at=now + timedelta(minutes=30),
            preview=preview,
            break_glass=True,  # inserted running, as an approved one is
            source=ProviderSource("neon", "new", point_at=now - timedelta(minutes=5)),
        ),
        now,
    )
    return runner, restores, incidents, db, record, stops


def _details(incidents: IncidentLog) -> str:
    return repr([(i.action, i.details) for i in incidents.recent(50)])


def test_an_operation_that_outlasts_the_timeout_fails_saying_the_provider_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = Scripted(-1, ProviderOperation("op-1", "succeeded"))
    runner, _, incidents, db, record, _ = _setup(tmp_path, adapter, None)
    clock = iter(range(0, 10_000, 30))  # each monotonic reading is 30 s later
    monkeypatch.setattr("backupbot.commands.provider_run.time.monotonic", lambda: next(clock))
    seen: list[RestoreProgress] = []
    done = runner.execute(record, db, seen.append)
    assert done.status == "failed" and done.result["failed_stage"] == "provider"
    assert "was still running after operation_timeout_minutes" in (done.error or "")
    assert "may exist" in done.result["target_state"]
    assert done.operation_id == "op-1"
    assert any(p.detail == "running: creating branch (check 0)" for p in seen), seen
    assert incidents.recent(1)[0].action == "restore.provider_failed"
    assert KEY not in _details(incidents)


def test_differing_counts_are_reported_and_a_missing_table_fails(
    tmp_path: Path, sample_db: dict[str, Any]
) -> None:
    counts: dict[str, int] = sample_db["counts"]
    table = sorted(counts)[0]
    ok = ProviderOperation(
        "op-1", "succeeded", None, "rescue", "127.0.0.1", connection_url=sample_db["url"]
    )
    runner, _, incidents, db, record, _ = _setup(
        tmp_path / "a", Scripted(2, ok), {**counts, table: counts[table] + 5}
    )
    done = runner.execute(record, db, lambda _p: None)
    assert done.status == "succeeded", done.error
    assert done.result["differing"] == [
        {"table": table, "expected": counts[table] + 5, "actual": counts[table]}
    ]
    assert done.result["matching_tables"] == len(counts) - 1
    assert done.result["result_host"] == "127.0.0.1"
    assert PG_PASSWORD not in _details(incidents) and "connection_url" not in _details(incidents)

    runner, _, _, db, record, _ = _setup(tmp_path / "b", Scripted(0, ok), {**counts, "gone": 3})
    failed = runner.execute(record, db, lambda _p: None)
    assert failed.status == "failed" and failed.result["failed_stage"] == "verify"
    assert "are missing from the result: gone" in (failed.error or "")


def test_a_stop_while_following_fails_the_restore_saying_the_provider_goes_on(
    tmp_path: Path,
) -> None:
    adapter = Scripted(-1, ProviderOperation("op-1", "succeeded"))
    runner, _, _, db, record, stops = _setup(tmp_path, adapter, None)
    threading.Timer(0.3, stops.interrupt_all).start()
    done = runner.execute(record, db, lambda _p: None)
    assert done.status == "failed"
    assert "the provider goes on with it" in (done.error or ""), done.error
