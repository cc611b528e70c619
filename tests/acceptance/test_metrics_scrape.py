"""`GET /metrics` of the real `backupbot serve` and `backupbot worker` (issue 14 item 1),
scraped over HTTP and parsed with prometheus_client's own parser: after real backups (one
good database, one whose server refuses it) the figures equal what the state database and
the backup's manifest hold, every process reports the same fleet, and no URL or secret is
in the exposition."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, select

from backupbot.devkit.slack_standin import SlackStandin
from backupbot.storage.models import BackupRow
from tests.acceptance.conftest import fresh_deployment, source_database, workerless_deployment
from tests.acceptance.harness import Deployment
from tests.acceptance.test_flows import _backup_id, backup_now
from tests.acceptance.test_workers import start_worker

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(base_url: str) -> tuple[str, Samples]:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        body = answer.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return body, samples


def _row(dep: Deployment, backup_id: str) -> BackupRow:
    engine = create_engine(dep.state_url)
    with engine.connect() as conn:
        row = conn.execute(select(BackupRow).where(BackupRow.id == backup_id)).one()
    engine.dispose()
    return row  # type: ignore[return-value]


@pytest.fixture
def two_databases(pg: Any) -> tuple[dict[str, str], dict[str, int]]:
    url, counts = source_database(pg)
    gone = url.rsplit("/", 1)[0] + "/no_such_database"  # the server refuses it
    return {"app": url, "gone": gone}, counts


def _assert_fleet(samples: Samples, row: BackupRow, rows: int) -> None:
    app = (("database", "app"),)
    gone = (("database", "gone"),)
    assert row.finished_at is not None
    success = samples[("backupbot_backup_last_success_timestamp_seconds", app)]
    assert success == pytest.approx(row.finished_at.timestamp(), abs=1e-3)
    assert samples[("backupbot_backup_last_attempt_success", app)] == 1
    assert samples[("backupbot_backup_last_stored_bytes", app)] == row.stored_size
    assert samples[("backupbot_backup_last_raw_bytes", app)] == row.raw_size
    assert samples[("backupbot_backup_last_rows", app)] == rows
    assert samples[("backupbot_backup_last_attempt_success", gone)] == 0
    assert ("backupbot_backup_last_success_timestamp_seconds", gone) not in samples
    status = (("database", "gone"), ("status", "failed"))
    assert samples[("backupbot_backups", status)] == 1
    assert samples[("backupbot_state_database_up", ())] == 1
    assert samples[("backupbot_rto_target_seconds", app)] == 30 * 60  # the default target


def _back_up_both(dep: Deployment) -> BackupRow:
    done = backup_now(dep)
    assert "succeeded" in done.text
    failed = backup_now(dep, args="gone")
    assert "failed" in failed.text
    return _row(dep, _backup_id(done.text))


def test_serve_metrics_after_real_backups(
    pg: Any, tmp_path: Path, two_databases: tuple[dict[str, str], dict[str, int]]
) -> None:
    databases, counts = two_databases
    with SlackStandin() as standin:
        dep = fresh_deployment(
            ("http", "sqlite"), pg, standin, tmp_path / "deploy", databases=databases
        )
        serve = dep.start()
        try:
            row = _back_up_both(dep)
            body, samples = scrape(serve.url)
        finally:
            dep.close()
    _assert_fleet(samples, row, sum(counts.values()))
    assert samples[("backupbot_scheduler_leader", (("scope", "process"),))] == 1
    jobs = [v for (name, _), v in samples.items() if name == "backupbot_jobs"]
    assert jobs and sum(jobs) == 0  # nothing queued or running once both ended
    for secret in (databases["app"], dep.exported["SLACK_SIGNING_SECRET"], "postgresql://"):
        assert secret not in body


@pytest.fixture
def fleet(
    pg: Any, tmp_path: Path, two_databases: tuple[dict[str, str], dict[str, int]]
) -> Iterator[tuple[Deployment, Any, dict[str, int]]]:
    databases, counts = two_databases
    with SlackStandin() as standin:
        dep = workerless_deployment(pg, standin, tmp_path / "deploy", databases)
        dep.start()
        worker = start_worker(dep, 1)
        yield dep, worker, counts
        worker.kill()
        dep.close()


def test_worker_and_serve_report_the_same_fleet_on_postgresql_state(
    fleet: tuple[Deployment, Any, dict[str, int]],
) -> None:
    dep, worker, counts = fleet
    row = _back_up_both(dep)  # serve queues, the worker runs both
    assert dep.serve is not None
    _, from_serve = scrape(dep.serve.url)
    _, from_worker = scrape(worker.url)
    for samples in (from_serve, from_worker):
        _assert_fleet(samples, row, sum(counts.values()))
    leader = ("backupbot_scheduler_leader", (("scope", "process"),))
    assert (from_serve[leader], from_worker[leader]) == (1, 0)
