"""A database reached through a transaction pooler, against the real `backupbot serve`
and the real CLI: a real PgBouncer in transaction mode in front of the test cluster, under
a Neon-style `-pooler` host name (`hostaddr=127.0.0.1` reaches it).

The pooler has one server connection (`default_pool_size = 1`, a small pooler or a full
one). A backup that held its snapshot transaction open while pg_dump ran would take that
connection for the whole dump, and pg_dump would wait for it until PgBouncer's
`query_wait_timeout` failed it (the bot before this change did exactly that). Now the
backup finds the pooler, dumps without the shared snapshot, counts rows in their own
transactions, succeeds, and says which host to use instead.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backupbot.devkit.pgbouncer import PgBouncer, pgbouncer_program
from backupbot.devkit.serve_process import backupbot_executable, user_environment, write_config
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REQUESTER
from tests.conftest import PG_PASSWORD


def _need_pgbouncer() -> None:
    if pgbouncer_program() is None:
        pytest.fail("pgbouncer is not installed: apt-get install pgbouncer (make system-deps)")


POOLER_HOST = "ep-quiet-lake-a1b2c3-pooler.us-east-2.aws.neon.tech"
DIRECT = "ep-quiet-lake-a1b2c3.us-east-2.aws.neon.tech"


@pytest.fixture
def bouncer(pg: Any, tmp_path: Path) -> Iterator[PgBouncer]:
    _need_pgbouncer()
    with PgBouncer.in_front_of(
        pg.url(), tmp_path / "bouncer", pool_size=1, query_wait_timeout=20
    ) as b:
        yield b


def _dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_a_backup_through_a_transaction_pooler_succeeds_and_names_the_direct_host(
    pg: Any, bouncer: PgBouncer, tmp_path: Path
) -> None:
    url, counts = source_database(pg)
    with SlackStandin() as standin:
        dep = fresh_deployment(
            ("http", "sqlite"),
            pg,
            standin,
            tmp_path / "deploy",
            databases={"app": bouncer.url(_dbname(url), host=POOLER_HOST)},
        )
        dep.start()
        try:
            answer = dep.slash(REQUESTER, "now app")
            assert answer.status == 200
            found = re.search(r"\b[0-9a-f]{8}\b", json.dumps(answer.json()))
            assert found, answer.json()
            backup_id = found.group()
            message = dep.wait_message(
                lambda m: backup_id in m.text and ("succeeded" in m.text or "failed" in m.text)
            )
            shown = message.text + json.dumps(message.blocks)
            assert "succeeded" in message.text, shown
            assert "reached through a transaction pooler" in shown
            assert f"connect to the direct host {DIRECT}:{bouncer.port}" in shown
            assert any(":warning:" in json.dumps(b) for b in message.blocks)

            incident = dep.wait_action("backup.succeeded", "app")
            assert incident.backup_id == backup_id
            [warning] = incident.details["warnings"]
            assert f"direct host {DIRECT}:{bouncer.port}" in warning

            [manifest_path] = dep.store_dir.glob(f"app/*-{backup_id}.manifest.json")
            manifest = json.loads(manifest_path.read_text())
            assert manifest["row_counts_snapshot"] == "separate"
            assert manifest["row_counts"] == counts
            assert manifest["connection_warnings"] == [warning]
            assert PG_PASSWORD not in shown + json.dumps(incident.details)
        finally:
            dep.close()


def _config_check(tmp_path: Path, url: str, provider: str) -> subprocess.CompletedProcess[str]:
    config = {
        "storage": {"local": {"path": str(tmp_path / "backups")}},
        "state_url": f"sqlite:///{tmp_path / 'state.db'}",
        "databases": [{"name": "app", "url": "${APP_DATABASE_URL}", "provider": provider}],
    }
    path = write_config(tmp_path / "backupbot.yml", config)
    return subprocess.run(
        [backupbot_executable(), "--config", str(path), "config", "check", "--live"],
        cwd="/",
        env=user_environment({"APP_DATABASE_URL": url}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_config_check_live_warns_of_the_pooler_and_of_tls_turned_off(
    bouncer: PgBouncer, sample_db: dict[str, Any], tmp_path: Path
) -> None:
    result = _config_check(tmp_path, bouncer.url(sample_db["name"], host=POOLER_HOST), "neon")
    out = result.stdout + result.stderr
    assert re.search(r"^app OK: PostgreSQL \d+\S*( \S+)*, pg_dump ", result.stdout, re.M), out
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, out
    assert "app is reached through a transaction pooler" in warnings[0]
    assert f"connect to the direct host {DIRECT}:{bouncer.port} instead" in warnings[0]
    assert "sslmode=disable, but neon accepts only TLS connections" in warnings[1]
    assert PG_PASSWORD not in out


def test_config_check_live_finds_an_unnamed_pgbouncer(
    bouncer: PgBouncer, sample_db: dict[str, Any], tmp_path: Path
) -> None:
    result = _config_check(tmp_path, bouncer.url(sample_db["name"]), "generic")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "warning: app is reached through a transaction pooler" in result.stdout, out
    assert "the database's direct host and port" in result.stdout


def test_config_check_live_of_a_direct_connection_has_no_warning(
    sample_db: dict[str, Any], tmp_path: Path
) -> None:
    result = _config_check(tmp_path, sample_db["url"], "generic")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "app OK: PostgreSQL" in result.stdout
    assert "warning: app" not in result.stdout


def test_a_neon_url_without_sslmode_is_connected_with_tls_required(
    bouncer: PgBouncer, sample_db: dict[str, Any], tmp_path: Path
) -> None:
    # the test cluster speaks TLS (a self-signed certificate): require connects
    result = _config_check(tmp_path / "cluster", sample_db["url"], "neon")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "app OK: PostgreSQL" in result.stdout
    assert "warning: app" not in result.stdout
    # this PgBouncer speaks no TLS to clients: the refusal shows require was applied
    plain = bouncer.url(sample_db["name"]).replace("?sslmode=disable", "")
    result = _config_check(tmp_path / "bouncer", plain, "neon")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "app FAILED: The SSL connection to" in result.stdout, result.stdout
    result = _config_check(tmp_path / "generic", plain, "generic")  # prefer: no TLS, fine
    assert "app OK: PostgreSQL" in result.stdout, result.stdout + result.stderr
