"""The real `backupbot serve` killed outright (SIGKILL, as the OOM killer or a lost node
does) in the middle of a backup, and what the next live process makes of it; and a state
database that refuses a write half-way through a transition."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from sqlalchemy import create_engine, text

from backupbot.devkit.botserver import free_port
from backupbot.devkit.manual_restore import restore_by_hand
from backupbot.devkit.pgcluster import PgCluster
from backupbot.devkit.sample_data import database_fingerprint
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REQUESTER, Deployment
from tests.acceptance.test_flows import _backup_id, _text, backup_now
from tests.conftest import PG_PASSWORD, cluster_dir, wait_until


def _kill_mid_dump(dep: Deployment, url: str) -> str:
    """Start `/backup now app`, wait until pg_dump runs (held back by an application's
    table lock), SIGKILL serve. The backup's id."""
    assert dep.serve is not None
    with psycopg.connect(url) as blocker:
        blocker.execute('LOCK TABLE "Opportunity" IN ACCESS EXCLUSIVE MODE')
        backup_id = _backup_id(_text(dep.slash(REQUESTER, "now app").json()))
        dep.wait_message(lambda m: backup_id in _text(m) and "dumping" in m.text)
        dep.serve.kill()
        blocker.rollback()
    return backup_id


def _status(dep: Deployment, backup_id: str) -> tuple[str, str | None]:
    engine = create_engine(dep.state_url)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT status, error FROM backups WHERE id = :id"), {"id": backup_id}
        ).one()
    engine.dispose()
    return row[0], row[1]


def _files(dep: Deployment) -> list[Path]:
    return sorted(p for p in dep.store_dir.rglob("*") if p.is_file())


def test_a_restarted_serve_fails_the_killed_backup_at_once_and_removes_its_partial_file(
    own_deployment: tuple[Deployment, str],
) -> None:
    dep, url = own_deployment
    backup_id = _kill_mid_dump(dep, url)
    [left] = _files(dep)
    assert ".partial-" in left.name  # the killed process left its half-written file
    assert _status(dep, backup_id)[0] == "running"  # and a row that says running

    dep.start()
    abandoned = dep.wait_incident(
        lambda i: i.action == "backup.abandoned" and i.backup_id == backup_id
    )

    assert abandoned.actor == "system" and abandoned.details["stage"] == "dumping"
    status, error = _status(dep, backup_id)
    assert status == "failed" and error is not None and "dumping stage" in error
    assert _files(dep) == []  # the partial file is gone
    again = backup_now(dep)  # and a new backup starts at once, with no "already running"
    assert again.text.startswith("Backup of app succeeded")


def test_the_correction_of_a_killed_backups_message_waits_out_a_slack_outage(
    own_deployment: tuple[Deployment, str],
) -> None:
    """The restarted serve takes the killed backup over while Slack answers 500 to
    chat.update: the corrected message waits in the outbox under the backup's key, and
    arrives in the original message once Slack answers again."""
    dep, url = own_deployment
    backup_id = _kill_mid_dump(dep, url)
    dep.standin.server_error("chat.update", times=None)
    try:
        dep.start()
        dep.wait_incident(lambda i: i.action == "backup.abandoned" and i.backup_id == backup_id)

        def waiting() -> bool:
            rows = _outbox(dep, f"backup:{backup_id}")
            return bool(rows) and rows[-1][0] == "pending" and rows[-1][1] >= 1

        assert wait_until(waiting, timeout=90), _outbox(dep, f"backup:{backup_id}")
        [shown] = [m for m in dep.standin.messages() if backup_id in _text(m)]
        assert "dumping" in shown.text  # Slack has not been told yet
    finally:
        dep.standin.clear_faults("chat.update")
    fixed = dep.wait_message(lambda m: m.ts == shown.ts and "failed" in m.text)
    assert "nothing was kept" in fixed.text  # the true end, in the message that said running
    assert [m.ts for m in dep.standin.messages() if backup_id in _text(m)] == [shown.ts]


def _outbox(dep: Deployment, key: str) -> list[tuple[str, int]]:
    engine = create_engine(dep.state_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, attempts FROM outbox WHERE key = :k ORDER BY id"), {"k": key}
        ).all()
    engine.dispose()
    return [(r[0], r[1]) for r in rows]


def test_the_cli_takes_over_a_backup_whose_serve_was_killed_and_records_it(
    own_deployment: tuple[Deployment, str],
) -> None:
    dep, url = own_deployment
    backup_id = _kill_mid_dump(dep, url)

    result = dep.cli("backup", "now", "app")

    assert " verified: " in result.stderr  # stdout carries only the new backup's id
    assert _status(dep, backup_id)[0] == "failed"
    [abandoned] = [
        i for i in dep.incidents() if i.backup_id == backup_id and i.action == "backup.abandoned"
    ]
    assert "nothing was kept" in abandoned.details["error"]
    assert [p for p in _files(dep) if ".partial" in p.name] == []
    assert dep.cli("log", "verify").stdout.strip().endswith("hash chain intact")


@pytest.mark.parametrize("kind", [("http", "postgresql")], indirect=True)
def test_a_start_whose_record_the_state_database_refuses_leaves_no_running_backup(
    own_deployment: tuple[Deployment, str],
) -> None:
    dep, _url = own_deployment
    state_url = dep.state_url.replace("+psycopg", "", 1)
    with psycopg.connect(state_url, autocommit=True) as state:
        state.execute(
            "CREATE FUNCTION refuse_start() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'could not extend file: No space left on device'; END $$"
        )
        state.execute(
            "CREATE TRIGGER refuse_start BEFORE INSERT ON incidents FOR EACH ROW "
            "WHEN (NEW.action = 'backup.started') EXECUTE FUNCTION refuse_start()"
        )
        answer = _text(dep.slash(REQUESTER, "now app").json())
        running = state.execute("SELECT count(*) FROM backups").fetchone()
        state.execute("DROP TRIGGER refuse_start ON incidents")

    assert "state database could not write" in answer and "No space left" in answer
    assert running == (0,)  # the backup's row went with its record: all or nothing
    assert backup_now(dep).text.startswith("Backup of app succeeded")  # nothing blocks it


@pytest.fixture
def own_state(pg: Any, tmp_path: Path) -> Iterator[tuple[Deployment, str, PgCluster]]:
    """A serve whose PostgreSQL state database is on a cluster of its own, so a test can
    stop and start it; with the source database's URL and that cluster."""
    with cluster_dir("state") as state_dir:
        state = PgCluster(state_dir, password=PG_PASSWORD, port=free_port()).start()
        try:
            yield from _serve_on(pg, tmp_path, state)
        finally:
            state.stop()


def _serve_on(
    pg: Any, tmp_path: Path, state: PgCluster
) -> Iterator[tuple[Deployment, str, PgCluster]]:
    url, _counts = source_database(pg)
    with SlackStandin() as standin:
        dep = fresh_deployment(
            ("http", "postgresql"), pg, standin, tmp_path / "deploy", databases={"app": url}
        )
        state_url = state.create_database("backupbot_state")
        dep.exported["BACKUPBOT_STATE_URL"] = state_url
        dep.state_url = state_url.replace("postgresql://", "postgresql+psycopg://", 1)
        dep.start()
        try:
            yield dep, url, state
        finally:
            dep.close()


def test_a_state_database_down_while_a_backup_finishes_gets_its_outcome_once_it_is_back(
    pg: Any, own_state: tuple[Deployment, str, PgCluster]
) -> None:
    dep, url, state = own_state
    serve = dep.serve
    assert serve is not None
    with psycopg.connect(url) as blocker:  # holds pg_dump back while we stop state
        blocker.execute('LOCK TABLE "Opportunity" IN ACCESS EXCLUSIVE MODE')
        backup_id = _backup_id(_text(dep.slash(REQUESTER, "now app").json()))
        dep.wait_message(lambda m: backup_id in _text(m) and "dumping" in m.text)
        state.stop("immediate")  # the state database goes away mid-backup, as in a crash
        blocker.rollback()  # and the dump finishes while it is away
    assert wait_until(lambda: "recording the outcome of backup" in serve.log_text(), 60)
    state.start()  # back (same port): the outcome is written now, once

    done = dep.wait_message(lambda m: backup_id in _text(m) and "succeeded" in m.text)
    assert done.text.startswith("Backup of app succeeded")
    records = [i.action for i in dep.incidents() if i.backup_id == backup_id]
    assert records.count("backup.succeeded") == 1 and "backup.failed" not in records
    [artifact] = dep.store_dir.glob(f"app/*-{backup_id}.dump.zst")
    restored = pg.create_database(f"after_outage_{secrets.token_hex(3)}")
    restore_by_hand(artifact, restored)
    assert database_fingerprint(restored) == database_fingerprint(url)
    assert backup_now(dep).text.startswith("Backup of app succeeded")  # still serving


def test_pg_dump_killed_mid_backup_fails_it_plainly_and_keeps_nothing(
    own_deployment: tuple[Deployment, str],
) -> None:
    dep, url = own_deployment
    assert dep.serve is not None
    serve = psutil.Process(dep.serve.pid)
    with psycopg.connect(url) as blocker:
        blocker.execute('LOCK TABLE "Opportunity" IN ACCESS EXCLUSIVE MODE')
        backup_id = _backup_id(_text(dep.slash(REQUESTER, "now app").json()))
        dep.wait_message(lambda m: backup_id in _text(m) and "dumping" in m.text)
        [pg_dump] = [p for p in serve.children(recursive=True) if p.name() == "pg_dump"]
        pg_dump.kill()  # the OOM killer, or an operator's kill -9
        failed = dep.wait_message(lambda m: backup_id in _text(m) and "failed" in m.text)
        blocker.rollback()

    assert "pg_dump" in failed.text and "succeeded" not in failed.text
    [record] = [i for i in dep.incidents() if i.backup_id == backup_id and i.outcome == "failed"]
    assert record.action == "backup.failed"
    assert _files(dep) == []  # no artifact, manifest or partial file
    assert backup_now(dep).text.startswith("Backup of app succeeded")  # still serving


def test_backups_still_run_after_the_state_database_was_away(
    own_state: tuple[Deployment, str, PgCluster],
) -> None:
    """A state database that was away just as a job ended (its end could not be written)
    must not leave the job holding its server's slot: a backup asked for once the
    database is back still runs."""
    dep, _url, state = own_state
    assert backup_now(dep).text.startswith("Backup of app succeeded")
    state.stop()  # every session of the bot ends, the worker's LISTEN among them
    state.start()
    for _ in range(2):  # the first one's NOTIFY finds the broken LISTEN
        assert backup_now(dep).text.startswith("Backup of app succeeded")


def test_a_passfile_a_killed_serve_left_is_removed_by_the_next_serve(
    pg: Any, tmp_path: Path
) -> None:
    url, _counts = source_database(pg)
    tmpdir = tmp_path / "tmp"  # this installation's TMPDIR, so only its own files are seen
    tmpdir.mkdir()
    private = tmpdir / f"backupbot-{os.getuid()}"
    with SlackStandin() as standin:
        dep = fresh_deployment(
            ("http", "sqlite"), pg, standin, tmp_path / "deploy", databases={"app": url}
        )
        dep.exported["TMPDIR"] = str(tmpdir)
        first = dep.start()
        try:
            _kill_mid_dump(dep, url)
            [left] = list(private.glob("backupbot-pgpass-*"))
            assert f"_{first.pid}_" in left.name  # named after the process that wrote it
            assert PG_PASSWORD in left.read_text(encoding="utf-8")
            assert stat.S_IMODE(private.stat().st_mode) == 0o700

            dep.start()
            assert backup_now(dep).text.startswith("Backup of app succeeded")

            assert list(private.glob("backupbot-pgpass-*")) == []  # the leftover and its own
            assert not list(tmpdir.glob("backupbot-pgpass-*"))  # none beside the directory
        finally:
            dep.close()
