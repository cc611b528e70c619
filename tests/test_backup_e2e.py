"""End to end: signed `/backup now` over HTTP -> verified artifact in S3 -> restored with
plain pg_restore -> identical database; and each failure path leaves nothing behind."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import zstandard

from backupbot.devkit.manual_restore import restore_by_hand
from backupbot.devkit.sample_data import database_fingerprint
from backupbot.storage.catalog import FAILED, SUCCEEDED
from backupbot.storage.pginspect import SnapshotSession
from backupbot.storage.pgschema import schema_fingerprint
from tests.conftest import CHANNEL, PG_PASSWORD, free_port, make_settings, s3_keys


def _bot_settings(state_url: str, db_url: str, bucket: str, endpoint: str, **db: Any) -> Any:
    return make_settings(
        state_url=state_url,
        storage={
            "s3": {
                "bucket": bucket,
                "prefix": "team/",
                "endpoint_url": endpoint,
                "region": "us-east-1",
            }
        },
        databases=[{"name": "app", "url": db_url, **db}],
    )


def test_signed_backup_now_stores_a_verified_artifact_that_restores_identically(
    pg: Any,
    sample_db: dict[str, Any],
    state_url: str,
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    bot_factory: Any,
    tmp_path: Path,
) -> None:
    bot = bot_factory(_bot_settings(state_url, sample_db["url"], bucket, s3_endpoint))

    started = time.monotonic()
    resp = bot.signer.slash_command("UALICE", "now --label pre-deploy")
    assert resp.status == 200
    assert time.monotonic() - started < 3.0
    assert "started" in resp.body
    bot.wait_idle()

    record = bot.services.catalog.latest("app")
    assert record is not None and record.status == SUCCEEDED, record
    assert record.actor == "UALICE" and record.label == "pre-deploy"
    keys = s3_keys(s3, bucket)
    assert keys == [f"team/{record.artifact_key}", f"team/{record.manifest_key}"]
    assert record.artifact_key.startswith("app/") and record.artifact_key.endswith(
        f"-{record.id}.dump.zst"
    )

    artifact = tmp_path / "backup.dump.zst"
    artifact.write_bytes(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read())
    target = pg.create_database("restored_e2e")
    restore_by_hand(artifact, target)
    assert database_fingerprint(target) == database_fingerprint(sample_db["url"])
    assert record.manifest["row_counts"] == sample_db["counts"]
    assert record.manifest["row_counts_snapshot"] == "same as dump"
    assert record.manifest["prisma_migration"]["migration_name"]
    stored = json.loads(s3.get_object(Bucket=bucket, Key=keys[1])["Body"].read())
    assert stored["schema"] == record.manifest["schema"], "the stored manifest and the row agree"
    schema = dict(record.manifest["schema"])
    assert schema.pop("snapshot") == "same as dump"
    with psycopg.connect(target, autocommit=True) as conn:
        assert schema == schema_fingerprint(conn), "the restored copy has the recorded schema"
    assert "User_email_key" in schema["tables"]["public.User"]["indexes"]  # Prisma's unique index

    messages = bot.standin.messages(CHANNEL)
    assert len(messages) == 1, "one message, updated in place"
    final = messages[0]
    assert "succeeded" in final.text and record.id in final.text
    assert final.history, "the started message was updated, not replaced"
    assert "started" in final.history[0]["text"]

    actions = [i.action for i in bot.services.incidents.for_backup(record.id)]
    assert actions == ["backup.started", "backup.succeeded"]
    pg.drop_database("restored_e2e")


def _assert_failed_cleanly(bot: Any, s3: Any, bucket: str | None, expect: str) -> Any:
    record = bot.services.catalog.latest("app")
    assert record is not None and record.status == FAILED
    assert expect in record.error
    assert PG_PASSWORD not in record.error
    if bucket is not None:
        assert s3_keys(s3, bucket) == []
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    final = bot.standin.messages(CHANNEL)[-1]
    assert "failed" in final.text and expect in final.text
    failures = [i for i in bot.services.incidents.for_backup(record.id) if i.outcome == "failed"]
    assert len(failures) == 1 and expect in failures[0].details["error"]
    return record


def test_wrong_password_gives_a_clear_message_and_keeps_nothing(
    pg: Any,
    sample_db: dict[str, Any],
    tmp_path: Path,
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    bot_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = pg.url(sample_db["name"], password="definitely-wrong")
    bot = bot_factory(_bot_settings(f"sqlite:///{tmp_path}/s.db", url, bucket, s3_endpoint))
    assert bot.signer.slash_command("UALICE", "now").status == 200
    bot.wait_idle()
    _assert_failed_cleanly(bot, s3, bucket, "refused the password")
    assert "definitely-wrong" not in caplog.text
    for _method, params in bot.standin.calls():
        assert "definitely-wrong" not in str(params)


def test_unreachable_host_gives_a_clear_message_and_keeps_nothing(
    tmp_path: Path, s3: Any, bucket: str, s3_endpoint: str, bot_factory: Any
) -> None:
    url = f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{free_port()}/app"
    bot = bot_factory(_bot_settings(f"sqlite:///{tmp_path}/s.db", url, bucket, s3_endpoint))
    bot.signer.slash_command("UALICE", "now")
    bot.wait_idle()
    _assert_failed_cleanly(bot, s3, bucket, "Could not reach the database server")


def test_a_failed_schema_fingerprint_keeps_nothing(
    sample_db: dict[str, Any],
    tmp_path: Path,
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    bot_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fingerprint is one of the facts taken in the snapshot: its failure (here the
    connection dropping while it runs, injected) fails the backup like a row count's."""

    def dropped(_self: SnapshotSession) -> dict[str, Any]:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(SnapshotSession, "schema", dropped)
    url = sample_db["url"]
    bot = bot_factory(_bot_settings(f"sqlite:///{tmp_path}/s.db", url, bucket, s3_endpoint))
    bot.signer.slash_command("UALICE", "now")
    bot.wait_idle()
    _assert_failed_cleanly(bot, s3, bucket, "was lost during the backup")


def test_missing_bucket_gives_a_clear_message(
    sample_db: dict[str, Any], tmp_path: Path, s3: Any, s3_endpoint: str, bot_factory: Any
) -> None:
    settings = _bot_settings(
        f"sqlite:///{tmp_path}/s.db", sample_db["url"], "no-such-bucket-here", s3_endpoint
    )
    bot = bot_factory(settings)
    bot.signer.slash_command("UALICE", "now")
    bot.wait_idle()
    _assert_failed_cleanly(bot, s3, None, "does not exist")


def test_pg_dump_killed_midway_leaves_nothing_and_never_saw_the_password_in_argv(
    sample_db: dict[str, Any],
    tmp_path: Path,
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    bot_factory: Any,
) -> None:
    import psutil

    bot = bot_factory(
        _bot_settings(f"sqlite:///{tmp_path}/s.db", sample_db["url"], bucket, s3_endpoint)
    )
    seen: list[tuple[str, str]] = []  # (argv, environment) of the pg_dump that was killed

    def kill_pg_dump(progress: Any) -> None:
        # Listener errors are swallowed by the backup, so only observe here; assert below.
        if progress.stage == "dumping" and not seen:
            for child in psutil.Process().children(recursive=True):
                if child.name() == "pg_dump":
                    seen.append((" ".join(child.cmdline()), str(child.environ())))
                    child.kill()

    record = bot.services.backups.backup_now("app", "UBOB", on_progress=kill_pg_dump)
    assert seen, "pg_dump was running when the dump stage began"
    argv, environment = seen[0]
    assert "--snapshot=" in argv and PG_PASSWORD not in argv
    assert PG_PASSWORD not in environment  # a private passfile, not PGPASSWORD
    assert record.status == FAILED
    assert "pg_dump was stopped by signal 9" in record.error
    assert s3_keys(s3, bucket) == []
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_second_backup_while_one_runs_is_refused_politely(
    sample_db: dict[str, Any],
    tmp_path: Path,
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    bot_factory: Any,
) -> None:
    bot = bot_factory(
        _bot_settings(f"sqlite:///{tmp_path}/s.db", sample_db["url"], bucket, s3_endpoint)
    )
    running = bot.services.backups.start("app", "UBOB")  # claimed, as a running backup is

    resp = bot.signer.slash_command("UALICE", "now app")
    assert resp.status == 200
    assert "already running" in resp.body and running.id in resp.body and "UBOB" in resp.body
    bot.wait_idle()
    assert bot.standin.messages(CHANNEL) == []
    assert [r.id for r in bot.services.catalog.recent("app")] == [running.id]
    refused = [i for i in bot.services.incidents.recent() if i.action == "backup.refused"]
    assert len(refused) == 1 and refused[0].actor == "UALICE"
    bot.services.backups.run(running)  # the first one still completes
    assert bot.services.catalog.get(running.id).status == SUCCEEDED


def test_local_store_backup_is_atomic_and_restorable_with_pg_restore(
    pg: Any, sample_db: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    settings = make_settings(
        state_url=f"sqlite:///{tmp_path}/s.db",
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=[{"name": "app", "url": sample_db["url"]}],
    )
    bot = bot_factory(settings)
    record = bot.services.backups.backup_now("app", "UALICE")
    assert record.status == SUCCEEDED
    files = sorted(p.name for p in (tmp_path / "backups" / "app").iterdir())
    assert files == [Path(record.artifact_key).name, Path(record.manifest_key).name]
    raw = (
        zstandard.ZstdDecompressor()
        .decompressobj()
        .decompress((tmp_path / "backups" / record.artifact_key).read_bytes())
    )
    assert len(raw) == record.raw_size
    target = pg.create_database("restored_local")
    restore_by_hand(tmp_path / "backups" / record.artifact_key, target)
    assert database_fingerprint(target) == database_fingerprint(sample_db["url"])
    pg.drop_database("restored_local")
