"""Restore targets on another server (`targets:`), through the real `backupbot serve`: a
restore `--into staging` writes the staging server's database (after a safety backup of
what it held) and nothing on the source's server; a drill with `drill.target: staging`
creates and drops its scratch database there; a protected in-place request tells its
approvers whether its backup was ever test-restored.

The staging server is a second PostgreSQL cluster started for this module.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy import create_engine, text

from backupbot.devkit.pgcluster import PgCluster
from backupbot.devkit.sample_data import database_fingerprint, load_sample_data
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import CHANNEL, LEAD, REQUESTER, REVIEWER, WAIT, Deployment
from tests.acceptance.test_flows import _backup_id, _button, _text, backup_now, database_exists
from tests.acceptance.test_flows import request_restore as _request
from tests.acceptance.test_lock_timeouts import application_lock
from tests.conftest import PG_PASSWORD, cluster_dir

KINDS = [
    pytest.param(("http", "sqlite"), id="http-sqlite"),
    pytest.param(("socket", "postgresql"), id="socket-pg"),
]


@pytest.fixture(scope="module")
def staging() -> Iterator[PgCluster]:
    with cluster_dir("staging") as path:
        cluster = PgCluster(path, password=PG_PASSWORD).start()
        yield cluster
        cluster.stop()


@pytest.fixture(scope="module", params=KINDS)
def dep(
    request: pytest.FixtureRequest,
    pg: Any,
    staging: PgCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """`app` (protected) on the main server; `staging`, a database on the other server
    that holds an older copy; drills run on the staging server."""
    url, _counts = source_database(pg)
    stage_db = f"stage_{secrets.token_hex(3)}"
    staging.create_database(stage_db)
    # Staging holds an older copy of the application, rows since lost and gained
    # included: what a restore overwrites.
    load_sample_data(staging.url(stage_db))
    staging.execute('DELETE FROM "AdminAudit"', stage_db)
    with SlackStandin() as standin:
        deployment = fresh_deployment(
            request.param,
            pg,
            standin,
            tmp_path_factory.mktemp("targets"),
            databases={"app": url},
            extra={
                "slack": {"channel": CHANNEL, "approvers": [REVIEWER, LEAD]},
                "targets": {"staging": {"url": "${STAGING_URL}"}},
                "drill": {"target": "staging"},
                # a backup held behind a lock waits out a slow machine (the slot test)
                "backup": {"lock_wait_seconds": 600},
            },
        )
        deployment.config["databases"][0]["protected"] = True
        deployment.exported["STAGING_URL"] = staging.url(stage_db)
        deployment.start()
        yield deployment
        deployment.close()


def _stage_url(dep: Deployment) -> str:
    return dep.exported["STAGING_URL"]


def _rows(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    assert row is not None
    return int(row[0])


def _backup(dep: Deployment, backup_id: str) -> tuple[str, str, str]:
    """The safety backup's catalog entry: under the target's name, verified."""
    engine = create_engine(dep.state_url)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT database, label, status FROM backups WHERE id = :id"), {"id": backup_id}
        ).one()
    engine.dispose()
    return (row[0], row[1], row[2])


def _cancel(dep: Deployment, message: Any) -> None:
    dep.click(REQUESTER, "restore_cancel", _button(message, "restore_cancel"), message.ts)
    dep.wait_message(lambda m: m.ts == message.ts and "Cancelled" in _text(m))


def test_targets_protected_requests_and_drills_on_the_staging_server(
    dep: Deployment, pg: Any, staging: PgCluster
) -> None:
    backup_now(dep)
    stage_db = _stage_url(dep).rsplit("/", 1)[-1]

    # Never test-restored: the protected in-place request warns its approvers.
    first, _ = _request(dep, "app latest --in-place --reason 'bad deploy'")
    assert "has never been restored in staging or a drill" in _text(first)
    assert "No backup of this database has been test-restored yet" in _text(first)
    _cancel(dep, first)

    # --into staging: the other server's database, overwritten after a safety backup.
    request, restore_id = _request(dep, "app latest --into staging")
    assert "configured target" in _text(request) and "staging" in _text(request)
    assert f"{staging.port}/{stage_db}" in _text(request)
    assert _rows(_stage_url(dep), "AdminAudit") == 0
    dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
    dep.wait_message(lambda m: m.ts == request.ts and "Restored and verified" in _text(m))
    assert _rows(_stage_url(dep), "AdminAudit") > 0
    assert database_fingerprint(_stage_url(dep)) == database_fingerprint(
        dep.exported["APP_DATABASE_URL"]
    )
    assert not database_exists(pg, stage_db)  # nothing written on the source's server
    safety = dep.wait_incident(
        lambda i: i.action == "restore.safety_backup" and i.details.get("restore_id") == restore_id
    )
    assert safety.outcome == "ok" and safety.details["target_name"] == "staging"
    assert _backup(dep, safety.details["safety_backup_id"]) == (
        "staging",
        "pre-restore",
        "succeeded",
    )

    # A drill: its scratch database lives (briefly) on the staging server.
    before = {m.ts for m in dep.standin.messages()}
    dep.slash(REQUESTER, "drill app")
    dep.wait_message(
        lambda m: m.ts not in before and m.text.startswith("Restore drill of app passed")
    )
    started = dep.wait_incident(lambda i: i.action == "drill.started" and i.database == "app")
    assert started.details["target_name"] == "staging"
    assert f":{staging.port}/" in started.details["scratch"]
    cleanup = dep.wait_incident(
        lambda i: (
            i.action == "drill.cleanup" and i.details.get("drill_id") == started.details["drill_id"]
        )
    )
    assert cleanup.outcome == "ok"
    scratch = started.details["scratch"].rsplit("/", 1)[-1]
    assert not database_exists(staging, scratch) and not database_exists(pg, scratch)

    # Now the same backup has been test-restored: the request says when and how.
    second, _ = _request(dep, "app latest --in-place")
    assert "was restored and verified in a restore drill on" in _text(second)
    _cancel(dep, second)


def test_config_check_lists_the_target_and_reaches_it_live(dep: Deployment) -> None:
    listed = dep.cli("config", "check")
    assert "target staging: " in listed.stdout
    assert "(--into staging); drills of app run on its server" in listed.stdout
    live = dep.cli("config", "check", "--live", check=False)
    assert "target staging OK: PostgreSQL" in live.stdout, live.stdout + live.stderr
    assert PG_PASSWORD not in live.stdout + live.stderr


def test_a_target_that_is_a_configured_database_is_a_config_error(
    dep: Deployment, tmp_path: Path
) -> None:
    config = dict(dep.config)
    config["targets"] = {"prod_copy": {"url": "${APP_DATABASE_URL}"}}
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(config))
    result = dep.cli("--config", str(bad), "config", "check", check=False)
    assert result.returncode == 2
    assert "target 'prod_copy' is the configured database 'app' itself" in result.stderr


def _backup_stage(dep: Deployment, backup_id: str) -> tuple[str, str | None]:
    engine = create_engine(dep.state_url)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT status, stage FROM backups WHERE id = :id"), {"id": backup_id}
        ).one()
    engine.dispose()
    return (row[0], row[1])


def test_a_restore_into_staging_does_not_wait_for_the_source_servers_job_slot(
    dep: Deployment,
) -> None:
    """`jobs.max_parallel_per_server` is 1 by default: a backup of `app` stuck behind a
    lock holds its server's slot. A restore `--into staging` loads the staging server,
    so it runs (and finishes) while that backup still waits."""
    backup_now(dep)
    app_url = dep.exported["APP_DATABASE_URL"]
    lock = 'LOCK TABLE "Opportunity" IN ACCESS EXCLUSIVE MODE'
    with application_lock(app_url, "slot-holder", lock):
        answer = dep.slash(REQUESTER, "now app")
        stuck = _backup_id(_text(answer.json()))
        assert dep.standin.wait_for(
            lambda: _backup_stage(dep, stuck) not in (("running", "queued"), ("running", None)),
            WAIT,
        ), "the backup was never claimed"
        request, restore_id = _request(dep, "app latest --into staging")
        dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
        dep.wait_message(lambda m: m.ts == request.ts and "Restored and verified" in _text(m))
        assert _backup_stage(dep, stuck)[0] == "running"  # still behind the lock
    assert dep.standin.wait_for(lambda: _backup_stage(dep, stuck)[0] == "succeeded", WAIT)
