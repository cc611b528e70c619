"""A fleet on PostgreSQL state: one `backupbot serve` that only leads the schedules and
answers Slack (`jobs.in_process_worker: false`) and two `backupbot worker` processes that
run every backup. Each scheduled firing of each database runs exactly once, on a worker;
and a worker SIGKILLed mid-backup leaves nothing the other cannot close truthfully."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text

from backupbot.devkit.botserver import free_port
from backupbot.devkit.serve_process import ServeProcess, user_environment
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import source_database, workerless_deployment
from tests.acceptance.harness import REQUESTER, Deployment
from tests.acceptance.test_flows import _backup_id, _text
from tests.conftest import wait_until

DATABASES = 6
EVERY_5_S = "*/5 * * * * *"


@pytest.fixture
def fleet(pg: Any, tmp_path: Path) -> Iterator[tuple[Deployment, list[ServeProcess]]]:
    urls = {f"db{k}": source_database(pg, f"fleet{k}")[0] for k in range(DATABASES)}
    with SlackStandin() as standin:
        dep = workerless_deployment(
            pg, standin, tmp_path / "deploy", urls, max_parallel_per_server=3
        )
        for entry in dep.config["databases"]:
            entry["schedule"] = EVERY_5_S
        dep.start()
        workers = [start_worker(dep, n) for n in (1, 2)]
        yield dep, workers
        for w in workers:
            w.kill()
        dep.close()


def start_worker(dep: Deployment, n: int) -> ServeProcess:
    """`backupbot worker` number `n`, from the deployment's config and environment."""
    return ServeProcess(
        dep.config_path,
        user_environment(dep.exported),
        port=free_port(),
        log_path=dep.workdir / f"worker{n}.log",
        command="worker",
    ).start()


def _rows(dep: Deployment, sql: str) -> list[Any]:
    engine = create_engine(dep.state_url)
    with engine.connect() as conn:
        rows = list(conn.execute(text(sql)))
    engine.dispose()
    return rows


def _pid(owner: str | None) -> int:
    assert owner is not None
    return int(owner.split(":")[1])


def test_two_workers_and_a_serve_run_every_scheduled_firing_exactly_once(
    fleet: tuple[Deployment, list[ServeProcess]],
) -> None:
    dep, workers = fleet
    assert dep.serve is not None

    def each_backed_up_twice() -> bool:
        done = _rows(
            dep,
            "SELECT database, count(*) FROM backups WHERE actor = 'scheduler' "
            "AND status = 'succeeded' GROUP BY database",
        )
        return len(done) == DATABASES and all(n >= 2 for _db, n in done)

    assert wait_until(each_backed_up_twice, 120), "the workers did not back up every database"
    assert dep.stop() == 0  # no more firings; then let the workers finish what is queued
    assert wait_until(lambda: not _rows(dep, "SELECT id FROM backups WHERE status = 'running'"), 60)

    ledger = _rows(
        dep,
        "SELECT job, scheduled_for, result FROM scheduled_runs "
        "WHERE job LIKE 'backup:%' AND status = 'done'",
    )
    queued = [r[2]["backup_id"] for r in ledger if r[2].get("backup_id")]
    backups = _rows(dep, "SELECT id, status, owner FROM backups WHERE actor = 'scheduler'")
    assert len({(r[0], r[1]) for r in ledger}) == len(ledger)  # one ledger row per firing
    assert sorted(queued) == sorted(r[0] for r in backups)  # each firing: one backup
    assert {r[1] for r in backups} == {"succeeded"}
    ran_on = {_pid(r[2]) for r in backups}
    assert ran_on <= {w.pid for w in workers}  # workers ran them; serve only queued
    assert dep.serve.pid not in ran_on
    assert dep.cli("log", "verify").stdout.strip().endswith("hash chain intact")


def test_a_worker_killed_mid_backup_is_closed_by_the_other_and_the_queue_moves_on(
    pg: Any, tmp_path: Path
) -> None:
    url, _counts = source_database(pg, "fleetkill")
    with SlackStandin() as standin:
        dep = workerless_deployment(pg, standin, tmp_path / "deploy", {"app": url})
        dep.start()
        first = start_worker(dep, 1)
        second: ServeProcess | None = None
        try:
            with psycopg.connect(url) as blocker:  # holds pg_dump back
                blocker.execute('LOCK TABLE "Opportunity" IN ACCESS EXCLUSIVE MODE')
                backup_id = _backup_id(_text(dep.slash(REQUESTER, "now app").json()))
                dep.wait_message(lambda m: backup_id in _text(m) and "dumping" in m.text)
                first.kill()
                blocker.rollback()
            second = start_worker(dep, 2)
            abandoned = dep.wait_incident(
                lambda i: i.action == "backup.abandoned" and i.backup_id == backup_id
            )
            assert abandoned.details["stage"] == "dumping"
            # the channel message no longer says running: the taker corrected it
            dep.wait_message(lambda m: backup_id in _text(m) and "failed" in m.text)
            # the killed worker's job no longer holds the server's lock: the next runs
            again = _backup_id(_text(dep.slash(REQUESTER, "now app").json()))
            done = dep.wait_message(lambda m: again in _text(m) and "succeeded" in m.text, 90)
            assert done.text.startswith("Backup of app succeeded")
        finally:
            first.kill()
            if second is not None:
                second.kill()
            dep.close()
