"""Parallel dumps (`backup.jobs: 2`) through the real `backupbot serve`: pg_dump -Fd -j 2
from the exported snapshot, stored as one `.tar.zst`, restorable by the bot (approved
restore, drill) and by hand (`zstd -dc | tar -x`, then `pg_restore -j`); a pg_dump killed
mid-dump, or a serve SIGKILLed mid-dump, leaves no work directory and no artifact; an
encrypted one (`.tar.zst.age`) is decrypted for verification and restores the same; through
a transaction pooler the dump runs with one connection and says so."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from backupbot.devkit.manual_restore import restore_by_hand
from backupbot.devkit.pgbouncer import PgBouncer
from backupbot.devkit.sample_data import database_fingerprint
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REQUESTER, REVIEWER, Deployment
from tests.acceptance.test_encryption import encrypted_deployment, restored, write_identity
from tests.acceptance.test_flows import _backup_id, _text, backup_now, request_restore
from tests.acceptance.test_pooler import POOLER_HOST, _dbname, bouncer
from tests.conftest import wait_until

__all__ = ["bouncer"]  # test_pooler.py's fixture: a real PgBouncer in transaction mode


@pytest.fixture
def parallel(pg: Any, tmp_path: Path) -> Iterator[tuple[Deployment, str, Path]]:
    """A serve backing up `app` with `backup.jobs: 2`, its work directory
    (`restore.work_dir`) where parallel dumps are assembled, and the source URL."""
    url, _counts = source_database(pg, "pardump")
    work = tmp_path / "work"
    with SlackStandin() as standin:
        dep = fresh_deployment(
            ("http", "sqlite"),
            pg,
            standin,
            tmp_path / "deploy",
            databases={"app": url},
            extra={"backup": {"jobs": 2}, "restore": {"work_dir": str(work)}},
        )
        dep.start()
        yield dep, url, work
        dep.close()


def _left_in(work: Path) -> list[Path]:
    return sorted(work.glob("backupbot-*")) if work.exists() else []


def _files(dep: Deployment) -> list[Path]:
    return sorted(p for p in dep.store_dir.rglob("*") if p.is_file())


def test_a_parallel_dump_is_one_tar_zst_restored_by_the_bot_and_by_hand_to_identical_rows(
    parallel: tuple[Deployment, str, Path], pg: Any
) -> None:
    dep, url, work = parallel
    message = backup_now(dep)
    assert message.text.startswith("Backup of app succeeded"), _text(message)
    backup_id = _backup_id(message.text)
    [artifact] = sorted(dep.store_dir.glob(f"app/*-{backup_id}.tar.zst"))
    manifest = json.loads(
        artifact.with_name(artifact.name.replace(".tar.zst", ".manifest.json")).read_text()
    )
    assert manifest["dump_format"] == "directory-tar" and manifest["dump_jobs"] == 2
    assert "--format=directory --jobs=2" in manifest["archive_format"]
    assert manifest["verified"]["pg_restore_list"] is True
    assert manifest["verified"]["toc_entries"] > len(manifest["row_counts"])
    stem = artifact.name.removesuffix(".tar.zst")
    assert manifest["restore_command"] == (
        f"zstd -dc {artifact.name} | tar -x && "
        f"pg_restore -j 4 --no-owner --no-acl -d TARGET_DB {stem}"
    )
    assert "tar -x" in _text(message)  # the success message shows the by-hand restore
    assert _left_in(work) == []  # the dump's directory went once it was packed

    by_hand = pg.create_database(f"by_hand_{secrets.token_hex(3)}")
    restore_by_hand(artifact, by_hand)  # zstd -dc | tar -x, then pg_restore -j 2 DIR
    assert database_fingerprint(by_hand) == database_fingerprint(url)

    target = f"approved_{secrets.token_hex(3)}"
    request, restore_id = request_restore(dep, f"app {backup_id} --into {target}")
    dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
    final = dep.wait_message(
        lambda m: m.ts == request.ts and ("Restored and verified" in _text(m) or "failed" in m.text)
    )
    assert "Restored and verified" in _text(final), _text(final)
    assert database_fingerprint(pg.url(target)) == database_fingerprint(url)

    before = {m.ts for m in dep.standin.messages()}
    dep.slash(REQUESTER, "drill app")
    drill = dep.wait_message(
        lambda m: (
            m.ts not in before
            and m.text.startswith(("Restore drill of app passed", "Restore drill of app failed"))
        )
    )
    assert drill.text.startswith("Restore drill of app passed"), _text(drill)
    assert wait_until(lambda: _left_in(work) == [])  # nor did the restore or drill leave any


def test_pg_dump_killed_mid_parallel_dump_leaves_no_work_directory_and_no_artifact(
    parallel: tuple[Deployment, str, Path],
) -> None:
    dep, url, work = parallel
    assert dep.serve is not None
    serve = psutil.Process(dep.serve.pid)
    with psycopg.connect(url) as blocker:
        blocker.execute('LOCK TABLE "Opportunity" IN ACCESS EXCLUSIVE MODE')
        backup_id = _backup_id(_text(dep.slash(REQUESTER, "now app").json()))
        dep.wait_message(lambda m: backup_id in _text(m) and "dumping" in m.text)
        [dump_dir] = _left_in(work)  # pg_dump -Fd is writing into it, waiting for the lock
        assert dump_dir.name.startswith(f"backupbot-{backup_id}-")
        assert dump_dir.stat().st_mode & 0o777 == 0o700
        dumps = [p for p in serve.children(recursive=True) if p.name() == "pg_dump"]
        assert dumps
        for pg_dump in dumps:
            pg_dump.kill()  # the OOM killer, or an operator's kill -9
        failed = dep.wait_message(lambda m: backup_id in _text(m) and "failed" in m.text)
        blocker.rollback()

    assert "pg_dump" in failed.text and "succeeded" not in failed.text
    assert _files(dep) == []  # no artifact, manifest or partial file
    assert _left_in(work) == []  # and no dump directory
    assert backup_now(dep).text.startswith("Backup of app succeeded")  # still serving


def test_a_serve_killed_mid_parallel_dump_has_its_work_directory_removed_by_the_takeover(
    parallel: tuple[Deployment, str, Path],
) -> None:
    dep, url, work = parallel
    assert dep.serve is not None
    with psycopg.connect(url) as blocker:
        blocker.execute('LOCK TABLE "Opportunity" IN ACCESS EXCLUSIVE MODE')
        backup_id = _backup_id(_text(dep.slash(REQUESTER, "now app").json()))
        dep.wait_message(lambda m: backup_id in _text(m) and "dumping" in m.text)
        dep.serve.kill()
        blocker.rollback()
    [left] = _left_in(work)  # a killed process cannot remove its own
    assert left.name.startswith(f"backupbot-{backup_id}-")

    dep.start()
    dep.wait_incident(lambda i: i.action == "backup.abandoned" and i.backup_id == backup_id)
    assert _left_in(work) == []
    assert _files(dep) == []


def test_an_encrypted_parallel_dump_is_verified_decrypted_and_restores_by_hand_and_by_the_bot(
    pg: Any, tmp_path: Path
) -> None:
    key_file = tmp_path / "operators-key.txt"
    public = write_identity(key_file)
    with SlackStandin() as standin:
        dep, url = encrypted_deployment(pg, standin, tmp_path / "deploy", [public], key_file)
        dep.config["backup"]["jobs"] = 2
        dep.start()
        try:
            message = backup_now(dep)
            assert message.text.startswith("Backup of app succeeded"), _text(message)
            backup_id = _backup_id(message.text)
            [artifact] = dep.store_dir.glob(f"app/*-{backup_id}.tar.zst.age")
            manifest = json.loads(
                artifact.with_name(
                    artifact.name.replace(".tar.zst.age", ".manifest.json")
                ).read_text()
            )
            assert manifest["dump_format"] == "directory-tar"
            assert manifest["verified"]["method"] == "full"  # decrypted, toc.dat listed
            assert manifest["restore_command"].startswith(
                f"age -d -i key.txt {artifact.name} | zstd -dc | tar -x && pg_restore -j 4"
            )

            by_hand = pg.create_database(f"byhand_age_{backup_id}")
            restore_by_hand(artifact, by_hand, identity=key_file)
            assert database_fingerprint(by_hand) == database_fingerprint(url)

            target = f"age_into_{backup_id}"
            assert "Restored and verified" in restored(dep, f"app {backup_id} --into {target}")
            assert database_fingerprint(pg.url(target)) == database_fingerprint(url)
        finally:
            dep.close()


def test_through_a_transaction_pooler_a_parallel_dump_uses_one_connection_and_says_so(
    pg: Any, bouncer: PgBouncer, tmp_path: Path
) -> None:
    """pg_dump's workers cannot share a snapshot through PgBouncer in transaction mode
    (and its one server connection is the leader's for the whole dump): the backup still
    succeeds, in directory format with one job, and the warning names `backup.jobs`."""
    url, _counts = source_database(pg, "pardump_pooled")
    with SlackStandin() as standin:
        dep = fresh_deployment(
            ("http", "sqlite"),
            pg,
            standin,
            tmp_path / "deploy",
            databases={"app": bouncer.url(_dbname(url), host=POOLER_HOST)},
            extra={"backup": {"jobs": 2}},
        )
        dep.start()
        try:
            message = backup_now(dep)
            shown = _text(message)
            assert message.text.startswith("Backup of app succeeded"), shown
            assert "backup.jobs: 2 was not used" in shown
            backup_id = _backup_id(message.text)
            [artifact] = dep.store_dir.glob(f"app/*-{backup_id}.tar.zst")
            manifest = json.loads(
                artifact.with_name(artifact.name.replace(".tar.zst", ".manifest.json")).read_text()
            )
            assert manifest["dump_format"] == "directory-tar" and manifest["dump_jobs"] == 1
            by_hand = pg.create_database(f"pooled_by_hand_{secrets.token_hex(3)}")
            restore_by_hand(artifact, by_hand)
            assert database_fingerprint(by_hand) == database_fingerprint(url)
        finally:
            dep.close()
