"""An application's table lock never makes the real `backupbot serve` hang: a backup
behind an ACCESS EXCLUSIVE lock fails after `backup.lock_wait_seconds`, and a `--clean`
restore behind an open write transaction fails after `restore.lock_timeout_seconds`,
each naming the table and the session holding it, recording the failure, and leaving
the bot serving."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backupbot.devkit.manual_restore import restore_by_hand
from backupbot.devkit.sample_data import database_fingerprint, load_sample_data
from backupbot.devkit.slack_standin import PostedMessage, SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REQUESTER, REVIEWER, Deployment
from tests.acceptance.test_flows import _backup_id, _text, backup_now, request_restore

TABLE = "Opportunity"
LOCK_SECONDS = 2


@pytest.fixture(scope="module")
def locked(
    kind: tuple[str, str], pg: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """An installation whose config sets short lock limits, as the README shows."""
    url, _counts = source_database(pg)
    with SlackStandin() as standin:
        dep = fresh_deployment(
            kind,
            pg,
            standin,
            tmp_path_factory.mktemp("locks") / "deploy",
            databases={"app": url},
            extra={
                "backup": {"lock_wait_seconds": LOCK_SECONDS},
                "restore": {"lock_timeout_seconds": LOCK_SECONDS},
            },
        )
        dep.start()
        yield dep
        dep.close()


@contextlib.contextmanager
def application_lock(url: str, application: str, statement: str) -> Iterator[int]:
    """Another application's open transaction after `statement`; yields its server pid."""
    with psycopg.connect(url, application_name=application) as holder:
        holder.execute(statement)  # type: ignore[arg-type]
        yield holder.info.backend_pid
        holder.rollback()


def backup_result(dep: Deployment) -> PostedMessage:
    """`/backup now app`; the backup's own result message, once it shows the outcome (not
    an escalation alert, which also names the backup and "failed", quoting the error)."""
    answer = dep.slash(REQUESTER, "now app")
    assert answer.status == 200
    backup_id = _backup_id(_text(answer.json()))
    return dep.wait_message(
        lambda m: (
            m.text.startswith((f"Backup of app failed (id {backup_id})", "Backup of app succeeded"))
            and backup_id in m.text
        )
    )


def _stored_files(dep: Deployment) -> list[Path]:
    return [p for p in dep.store_dir.rglob("*") if p.is_file()]


def test_a_backup_behind_an_exclusive_lock_fails_naming_table_and_holder_and_keeps_nothing(
    locked: Deployment,
) -> None:
    dep = locked
    url = dep.exported["APP_DATABASE_URL"]
    before = set(_stored_files(dep))
    statement = f'LOCK TABLE "{TABLE}" IN ACCESS EXCLUSIVE MODE'
    with application_lock(url, "migrate-orders", statement) as holder_pid:
        message = backup_result(dep)
        backup_id = _backup_id(message.text)

        assert "failed" in message.text, _text(message)
        shown = message.text
        for expected in (f'"{TABLE}"', "migrate-orders", f"session {holder_pid}"):
            assert expected in shown, shown
        assert "LOCK TABLE" in shown and "backup.lock_wait_seconds" in shown, shown
        failed = dep.wait_incident(
            lambda i: i.action == "backup.failed" and i.backup_id == backup_id
        )
        assert f'"{TABLE}"' in failed.details["error"], failed.details
        assert "migrate-orders" in failed.details["error"], failed.details
        assert set(_stored_files(dep)) == before, "nothing of the failed backup was stored"
        status = dep.cli_json("status", "app")
        assert (status[0]["last_success"] or {}).get("id") != backup_id

    again = backup_result(dep)  # the lock is gone: the bot still serves, the next one works
    assert "succeeded" in again.text, _text(again)
    again_id = _backup_id(again.text)
    assert len(list(dep.store_dir.glob(f"app/*-{again_id}.dump.zst"))) == 1


def test_a_clean_restore_behind_an_application_lock_fails_naming_it_and_the_safety_backup(
    locked: Deployment, pg: Any
) -> None:
    dep = locked
    backup_now(dep)
    target = f"busy_{dep.transport}_{dep.state_kind}_{secrets.token_hex(3)}"
    target_url = pg.create_database(target)
    load_sample_data(target_url)
    # The application wrote to the table and has not committed: it holds ROW EXCLUSIVE,
    # which the safety backup can read past but `--clean` (DROP) cannot.
    statement = f'UPDATE "{TABLE}" SET title = title WHERE id = (SELECT id FROM "{TABLE}" LIMIT 1)'
    with application_lock(target_url, "checkout-service", statement) as holder_pid:
        before = database_fingerprint(target_url)
        request, restore_id = request_restore(dep, f"app latest --into {target}")
        dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
        final = dep.wait_message(lambda m: m.ts == request.ts and "Restore failed" in _text(m))

        failed = dep.wait_incident(
            lambda i: i.action == "restore.failed" and i.details.get("restore_id") == restore_id
        )
        error = failed.details["error"]
        for expected in (f'"{TABLE}"', "checkout-service", f"session {holder_pid}"):
            assert expected in error, error
        assert "restore.lock_timeout_seconds" in error, error
        safety_id = failed.details["safety_backup_id"]
        assert safety_id and safety_id in failed.details["target_state"], failed.details
        shown = _text(final)
        assert "checkout-service" in shown and safety_id in shown, shown
        safety = dep.wait_incident(
            lambda i: i.action == "backup.succeeded" and i.backup_id == safety_id
        )
        assert safety.details["label"] == "pre-restore"
    # The safety backup holds the target as it was before the restore touched it.
    [artifact] = dep.store_dir.glob(f"{target}/*-{safety_id}.dump.zst")
    recovered = pg.create_database(f"recovered_{secrets.token_hex(3)}")
    restore_by_hand(artifact, recovered)
    assert database_fingerprint(recovered) == before

    posts = len(dep.standin.response_posts())  # the bot still answers
    assert dep.slash(REVIEWER, "status").status == 200
    status = dep.wait_response(lambda p: dep.standin.response_posts().index(p) >= posts)
    assert "app" in _text(status.body)
