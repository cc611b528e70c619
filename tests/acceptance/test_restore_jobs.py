"""Restores and drills as queue jobs on PostgreSQL state: an approved restore is run by a
`backupbot worker` when serve runs no jobs itself, a drill runs once however many
workers share the queue, and a worker SIGKILLed mid-restore or mid-drill leaves nothing
a live process cannot close truthfully (nor anything that blocks the next restore of
its target, nor a scratch database).
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from sqlalchemy import create_engine, text

from backupbot.devkit.botserver import free_port
from backupbot.devkit.pgcluster import PgCluster
from backupbot.devkit.sample_data import database_fingerprint, load_sample_data
from backupbot.devkit.serve_process import ServeProcess
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database, workerless_deployment
from tests.acceptance.harness import REQUESTER, REVIEWER, Deployment
from tests.acceptance.test_flows import _text, backup_now, request_restore
from tests.acceptance.test_lifecycle import _pg_restore_sessions
from tests.acceptance.test_workers import start_worker
from tests.conftest import PG_PASSWORD, cluster_dir, wait_until


@pytest.fixture
def jobless_serve(pg: Any, tmp_path: Path) -> Iterator[tuple[Deployment, str]]:
    """A serve on PostgreSQL state that runs no jobs (`jobs.in_process_worker: false`),
    with database `app`; the test starts the workers."""
    url, _counts = source_database(pg, "jobs")
    with SlackStandin() as standin:
        dep = workerless_deployment(pg, standin, tmp_path / "deploy", {"app": url})
        dep.start()
        yield dep, url
        dep.close()


def _row(dep: Deployment, sql: str, **params: Any) -> Any:
    engine = create_engine(dep.state_url)
    with engine.connect() as conn:
        row = conn.execute(text(sql), params).one()
    engine.dispose()
    return row


def _pid(owner: str | None) -> int:
    assert owner is not None and owner.count(":") == 2, owner
    return int(owner.split(":")[1])


def test_an_approved_restore_is_run_by_a_worker_when_serve_runs_no_jobs(
    jobless_serve: tuple[Deployment, str], pg: Any
) -> None:
    dep, url = jobless_serve
    assert dep.serve is not None
    worker = start_worker(dep, 1)
    try:
        backup_now(dep)
        target = f"by_worker_{secrets.token_hex(3)}"
        request, restore_id = request_restore(dep, f"app latest --into {target}")
        dep.click(REVIEWER, "restore_approve", restore_id, request.ts)

        final = dep.wait_message(
            lambda m: m.ts == request.ts and "Restored and verified" in _text(m)
        )
        assert "Restore failed" not in _text(final)
        assert database_fingerprint(pg.url(target)) == database_fingerprint(url)
        status, owner = _row(
            dep, "SELECT status, owner FROM restores WHERE id = :id", id=restore_id
        )
        assert status == "succeeded"
        assert _pid(owner) == worker.pid  # the worker ran it; serve only queued it
        actions = [i.action for i in dep.incidents() if i.details.get("restore_id") == restore_id]
        assert actions.count("restore.started") == 1 and actions.count("restore.succeeded") == 1
    finally:
        worker.kill()


def test_a_drill_runs_exactly_once_when_serve_and_two_workers_share_the_queue(
    pg: Any, tmp_path: Path
) -> None:
    url, _counts = source_database(pg, "drillonce")
    with SlackStandin() as standin:
        dep = fresh_deployment(
            ("http", "postgresql"), pg, standin, tmp_path / "deploy", databases={"app": url}
        )
        dep.start()  # serve's own in-process worker takes jobs too
        assert dep.serve is not None
        workers = [start_worker(dep, n) for n in (1, 2)]
        try:
            backup_now(dep)
            before = {m.ts for m in standin.messages()}
            dep.slash(REQUESTER, "drill app")
            drill = dep.wait_message(
                lambda m: m.ts not in before and m.text.startswith("Restore drill of app passed")
            )

            drills = [i for i in dep.incidents() if i.action.startswith("drill.")]
            started = [i for i in drills if i.action == "drill.started"]
            assert len(started) == 1
            drill_id = started[0].details["drill_id"]
            assert drill_id in _text(drill)
            assert [i.action for i in drills if i.action != "drill.cleanup"] == [
                "drill.passed",
                "drill.started",
            ]
            restores = [
                i
                for i in dep.incidents()
                if i.action == "restore.started" and i.details.get("mode") == "drill"
            ]
            assert len(restores) == 1  # the drill's one restore into its scratch database
            assert len([m for m in standin.messages() if drill_id in _text(m)]) == 1
            status, owner = _row(
                dep, "SELECT status, owner FROM drills WHERE id = :id", id=drill_id
            )
            assert status == "passed"
            assert _pid(owner) in {dep.serve.pid, *(w.pid for w in workers)}
            assert wait_until(
                lambda: (
                    _row(
                        dep,
                        "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')",
                    )[0]
                    == 0
                )
            ), "a job is still queued or running"
        finally:
            for w in workers:
                w.kill()
            dep.close()


def test_a_worker_killed_mid_restore_is_abandoned_and_its_target_can_be_restored_again(
    jobless_serve: tuple[Deployment, str], pg: Any
) -> None:
    dep, url = jobless_serve
    first = start_worker(dep, 1)
    second: ServeProcess | None = None
    try:
        backup_now(dep)
        target = f"killed_{secrets.token_hex(3)}"
        target_url = pg.create_database(target)
        load_sample_data(target_url)
        # An application's open write holds ROW EXCLUSIVE: the restore's --clean DROP waits.
        with psycopg.connect(target_url, application_name="checkout-service") as holder:
            holder.execute(
                'UPDATE "Opportunity" SET title = title '
                'WHERE id = (SELECT id FROM "Opportunity" LIMIT 1)'
            )
            request, restore_id = request_restore(dep, f"app latest --into {target}")
            dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
            assert wait_until(lambda: _pg_restore_sessions(target_url) > 0), "no pg_restore ran"
            assert _work_dirs(restore_id), "the restore unpacked its archive nowhere"
            # The worker and its pg_restore die at once (the OOM killer, a lost node).
            tree = psutil.Process(first.pid)
            children = tree.children(recursive=True)
            first.kill()
            for child in children:
                child.kill()
            holder.rollback()

        abandoned = dep.wait_incident(
            lambda i: i.action == "restore.abandoned" and i.details.get("restore_id") == restore_id
        )
        assert abandoned.details["stage"] == "restore"
        assert _pid(abandoned.details["owner"]) == first.pid
        assert _work_dirs(restore_id) == []  # the unpacked archive went with the takeover
        # the request message no longer says restoring: the taker corrected it
        dep.wait_message(lambda m: m.ts == request.ts and "Restore failed" in _text(m))
        status, error = _row(
            dep, "SELECT status, error FROM restores WHERE id = :id", id=restore_id
        )
        assert status == "failed" and "stopped while this restore was running" in error

        # The target is free again: a new request of it is accepted and a live worker runs it.
        second = start_worker(dep, 2)
        again, again_id = request_restore(dep, f"app latest --into {target}")
        assert again_id != restore_id
        dep.click(REVIEWER, "restore_approve", again_id, again.ts)
        dep.wait_message(lambda m: m.ts == again.ts and "Restored and verified" in _text(m), 120)
        assert database_fingerprint(target_url) == database_fingerprint(url)
    finally:
        first.kill()
        if second is not None:
            second.kill()


def test_a_killed_workers_orphaned_pg_restore_is_ended_by_the_takeover(
    jobless_serve: tuple[Deployment, str], pg: Any
) -> None:
    """SIGKILL reaches the worker only: its pg_restore lives on as an orphan, waiting on
    an application's lock with nobody left to cancel it. The process that takes the
    restore over ends its sessions by the name the restore's id gives them, and the
    orphan, restoring with --exit-on-error, exits while the lock is still held."""
    dep, _url = jobless_serve
    worker = start_worker(dep, 1)
    try:
        backup_now(dep)
        target = f"orphan_{secrets.token_hex(3)}"
        target_url = pg.create_database(target)
        load_sample_data(target_url)
        with psycopg.connect(target_url, application_name="checkout-service") as holder:
            holder.execute(
                'UPDATE "Opportunity" SET title = title '
                'WHERE id = (SELECT id FROM "Opportunity" LIMIT 1)'
            )
            request, restore_id = request_restore(dep, f"app latest --into {target}")
            dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
            assert wait_until(lambda: _pg_restore_sessions(target_url) > 0), "no pg_restore ran"
            orphans = [
                p
                for p in psutil.Process(worker.pid).children(recursive=True)
                if p.name() == "pg_restore"
            ]
            assert orphans, "the worker runs no pg_restore"
            worker.kill()  # the worker alone: its pg_restore is reparented and goes on

            dep.wait_incident(
                lambda i: (
                    i.action == "restore.abandoned" and i.details.get("restore_id") == restore_id
                )
            )
            assert wait_until(lambda: not any(map(_alive, orphans))), (
                "the orphaned pg_restore still runs after the takeover"
            )
            assert _pg_restore_sessions(target_url) == 0
            holder.rollback()
    finally:
        worker.kill()


def _work_dirs(restore_id: str) -> list[Path]:
    """Where the restore unpacked its archive (`restore.work_dir` unset: TMPDIR)."""
    return list(Path(tempfile.gettempdir()).glob(f"backupbot-{restore_id}-*"))


def _alive(process: psutil.Process) -> bool:
    """Running, not a zombie (an orphan's reaper may be slow, or be no real init)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _scratch_sessions(server: PgCluster) -> int:
    """Sessions in a drill's scratch database (its pg_restore, held by the event trigger)."""
    with psycopg.connect(server.url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'backupbot_drill_%'"
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def app_server() -> Iterator[PgCluster]:
    """A PostgreSQL server of the test's own (the test alters its template1)."""
    with cluster_dir("app") as path:
        server = PgCluster(path, password=PG_PASSWORD, port=free_port()).start()
        try:
            yield server
        finally:
            server.stop()


def test_a_worker_killed_mid_drill_fails_it_drops_its_scratch_database_and_fixes_the_message(
    pg: Any, tmp_path: Path, app_server: PgCluster
) -> None:
    server = app_server
    # Databases created from template1 on this server (the drill's scratch database;
    # the source comes from template0) make every DDL wait: the drill's pg_restore is
    # caught mid-restore however small the data.
    server.execute(
        "CREATE FUNCTION hold_ddl() RETURNS event_trigger LANGUAGE plpgsql "
        "AS $$ BEGIN PERFORM pg_sleep(600); END $$",
        "template1",
    )
    server.execute(
        "CREATE EVENT TRIGGER hold_ddl ON ddl_command_start EXECUTE FUNCTION hold_ddl()",
        "template1",
    )
    url = server.create_database("app")
    load_sample_data(url)
    with SlackStandin() as standin:
        dep = workerless_deployment(pg, standin, tmp_path / "deploy", {"app": url})
        dep.start()
        worker = start_worker(dep, 1)
        try:
            backup_now(dep)
            before = {m.ts for m in standin.messages()}
            dep.slash(REQUESTER, "drill app")
            started = dep.wait_message(
                lambda m: m.ts not in before and m.text.startswith("Restore drill of app")
            )
            assert wait_until(lambda: _scratch_sessions(server) > 0), "the drill never restored"
            [scratch] = [d for d in _databases(server) if d.startswith("backupbot_drill_")]
            tree = psutil.Process(worker.pid)
            children = tree.children(recursive=True)
            worker.kill()  # with its pg_restore, as the OOM killer or a lost node does
            for child in children:
                child.kill()

            failed = dep.wait_incident(lambda i: i.action == "drill.failed")
            drill_id = failed.details["drill_id"]
            assert "stopped during the drill" in failed.details["error"]
            assert _pid(failed.details["owner"]) == worker.pid
            assert scratch not in _databases(server)  # the scratch database is gone
            dep.wait_action("drill.cleanup")
            # the message posted when the drill started now shows how it ended
            dep.wait_message(
                lambda m: m.ts == started.ts and m.text.startswith("Restore drill of app failed")
            )
            status, restore_status = _row(
                dep,
                "SELECT d.status, r.status FROM drills d JOIN restores r "
                "ON r.id = d.restore_id WHERE d.id = :id",
                id=drill_id,
            )
            assert (status, restore_status) == ("failed", "failed")
        finally:
            worker.kill()
            dep.close()


def _databases(server: PgCluster) -> list[str]:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        return [str(r[0]) for r in conn.execute("SELECT datname FROM pg_database")]
