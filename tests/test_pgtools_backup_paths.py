"""A state database that errors on every progress write once pg_dump runs: the backup
goes on to a verified result (progress is best effort) and pg_dump is reaped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy.exc import OperationalError

from backupbot.clock import SystemClock
from backupbot.commands.backup import BackupService
from backupbot.settings import DatabaseSettings
from backupbot.storage.catalog import SUCCEEDED, BackupCatalog
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.local_store import LocalStore
from backupbot.storage.state import create_state_engine, migrate
from tests.test_pgtools_reaping import pg_children


class _StateDatabaseDownWhileDumping(BackupCatalog):
    """The state database fails every progress write once pg_dump runs."""

    children_at_fault: list[int] = []

    def progress(self, backup_id: str, stage: str, progress_bytes: int) -> None:
        running = [p.pid for p in pg_children()]
        if running:  # pg_dump has been started: the "dumping" stage
            self.children_at_fault = running
            raise OperationalError("UPDATE backups", {}, Exception("server closed the connection"))
        super().progress(backup_id, stage, progress_bytes)


def test_progress_writes_failing_while_pg_dump_runs_do_not_stop_the_backup_and_it_is_reaped(
    sample_db: dict[str, Any], tmp_path: Path
) -> None:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    catalog = _StateDatabaseDownWhileDumping(engine)
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
    assert record.status == SUCCEEDED  # progress is best effort; the outcome is not
    assert len(list((tmp_path / "backups").rglob("*.dump.zst"))) == 1
    assert IncidentLog(engine).recent(1)[0].action == "backup.succeeded"
    engine.dispose()
