"""A backup that fails right after pg_dump started (its first heartbeat write, to a state
database that errors) still stops and reaps pg_dump and keeps nothing."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy.exc import OperationalError

from backupbot.clock import SystemClock
from backupbot.commands.backup import BackupService
from backupbot.settings import DatabaseSettings
from backupbot.storage.catalog import FAILED, BackupCatalog
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.local_store import LocalStore
from backupbot.storage.state import create_state_engine, migrate
from tests.test_pgtools_reaping import pg_children


class _StateDatabaseDownWhileDumping(BackupCatalog):
    """The state database fails the heartbeat written as the dump starts."""

    children_at_fault: list[int] = []

    def heartbeat(self, backup_id: str, now: datetime, progress_bytes: int) -> None:
        running = [p.pid for p in pg_children()]
        if running:  # pg_dump has been started: the "dumping" stage
            self.children_at_fault = running
            raise OperationalError("UPDATE backups", {}, Exception("server closed the connection"))
        super().heartbeat(backup_id, now, progress_bytes)


def test_a_failing_first_heartbeat_after_pg_dump_started_stops_and_reaps_it(
    sample_db: dict[str, Any], tmp_path: Path
) -> None:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    catalog = _StateDatabaseDownWhileDumping(engine, stale_after=timedelta(minutes=15))
    store = LocalStore(tmp_path / "backups")
    service = BackupService(
        databases=[DatabaseSettings(name="app", url=SecretStr(sample_db["url"]))],
        catalog=catalog,
        incidents=IncidentLog(engine),
        store=store,
        clock=SystemClock(),
    )

    record = service.run(service.start("app", "UALICE"))

    assert catalog.children_at_fault, "the fault hit while pg_dump was running"
    assert pg_children() == [], "pg_dump is neither running nor a zombie"
    assert record.status == FAILED
    assert [p for p in (tmp_path / "backups").rglob("*") if p.is_file()] == []
    assert IncidentLog(engine).recent(1)[0].action == "backup.failed"
    engine.dispose()
