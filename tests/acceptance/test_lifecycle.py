"""Starting, stopping and restarting the real `backupbot serve`: SIGTERM in the middle of
a backup, and a restart afterwards."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text

from backupbot.devkit.sample_data import load_sample_data
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REQUESTER, REVIEWER, Deployment
from tests.acceptance.test_flows import _backup_id, _text, backup_now, request_restore
from tests.conftest import wait_until


def test_sigterm_during_a_backup_records_a_failure_keeps_nothing_and_a_restart_serves(
    own_deployment: tuple[Deployment, str],
) -> None:
    dep, url = own_deployment
    assert dep.serve is not None
    with psycopg.connect(url) as blocker:  # an application holding a table lock
        blocker.execute('LOCK TABLE "Opportunity" IN ACCESS EXCLUSIVE MODE')
        answer = dep.slash(REQUESTER, "now app")
        backup_id = _backup_id(_text(answer.json()))
        # pg_dump has started (the message says so) and cannot finish: the table is locked
        dep.wait_message(lambda m: backup_id in _text(m) and "dumping" in m.text)

        started = time.monotonic()
        code = dep.stop()  # SIGTERM; raises if the process is still there after 10 s
        stopped_in = time.monotonic() - started
        blocker.rollback()

    assert code == 0 and stopped_in < 10
    message = dep.wait_message(lambda m: backup_id in _text(m) and "failed" in m.text, 1)
    assert "interrupted" in message.text and "stopped" in message.text
    failed = [i for i in dep.incidents() if i.backup_id == backup_id]
    assert [i.action for i in failed][:2] == ["backup.failed", "backup.started"]
    assert "interrupted" in failed[0].details["error"]
    assert [p for p in dep.store_dir.rglob("*") if p.is_file()] == []  # not even a temp file
    engine = create_engine(dep.state_url)
    with engine.connect() as conn:
        status = conn.execute(
            text("SELECT status FROM backups WHERE id = :id"), {"id": backup_id}
        ).scalar()
    engine.dispose()
    assert status == "failed"

    dep.start()  # the restart serves normally: the next backup succeeds
    again = backup_now(dep)
    assert "succeeded" in again.text
    assert len(list(dep.store_dir.glob("app/*.dump.zst"))) == 1


@pytest.fixture(params=["sqlite", "postgresql"])
def over_socket(request: pytest.FixtureRequest, pg: Any, tmp_path: Path) -> Iterator[Deployment]:
    url, _counts = source_database(pg)
    with SlackStandin() as standin:
        kind = ("socket", str(request.param))
        dep = fresh_deployment(kind, pg, standin, tmp_path / "deploy", databases={"app": url})
        dep.start()
        yield dep
        dep.close()


def test_socket_mode_reconnects_after_a_drop_and_a_refresh_and_loses_no_command(
    over_socket: Deployment,
) -> None:
    dep = over_socket
    opened = dep.standin.socket_connections_opened()

    dep.standin.drop_socket_connections()  # a network cut: no goodbye
    help_text = dep.slash(REQUESTER, "help").json()["text"]  # sent while disconnected
    assert "/backup now" in help_text
    assert dep.standin.socket_connections_opened() > opened

    reconnected = dep.standin.socket_connections_opened()
    assert dep.standin.request_refresh() == 1  # Slack rotating the connection
    message = backup_now(dep)
    assert message.text.startswith("Backup of app succeeded")
    assert dep.standin.socket_connections_opened() > reconnected
    assert dep.actions("app").count("backup.started") == 1  # delivered and run once


def test_sigterm_during_a_restore_stops_pg_restore_and_records_it_interrupted(
    own_deployment: tuple[Deployment, str], pg: Any
) -> None:
    dep, _url = own_deployment
    backup_now(dep)
    target = f"restoring_{secrets.token_hex(3)}"
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
        assert wait_until(lambda: _pg_restore_sessions(target_url) > 0), "pg_restore never ran"

        started = time.monotonic()
        code = dep.stop()
        stopped_in = time.monotonic() - started
        holder.rollback()

    assert code == 0 and stopped_in < 10
    failed = dep.wait_incident(
        lambda i: i.action == "restore.failed" and i.details.get("restore_id") == restore_id
    )
    assert "interrupted" in failed.details["error"] and failed.details["stage"] == "restore"
    assert failed.details["safety_backup_id"]  # the target's previous state is kept
    assert _pg_restore_sessions(target_url) == 0  # nothing of it is left on the server


def _pg_restore_sessions(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE %s",
            ("%pg_restore%",),
        ).fetchone()
    return int(row[0]) if row else 0
