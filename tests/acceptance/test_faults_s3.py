"""S3 faults, injected for real: the real `backupbot serve` stores its backups in moto's S3
server through a fault-injecting proxy (`storage.s3.endpoint_url` points at the proxy).

The deployment here verifies by reading every backup back (`backup.verify: full`), the
read-back these faults are about; the default, S3's own checksums, is in
`test_s3_checksums.py`.

For each fault: no false "succeeded" (a success only after the read-back verified it), a
failure told in plain words in the channel with a `backup.failed` incident, nothing of
that backup left in the bucket (no object, no manifest, no open multipart upload), and
the bot still serving: once the fault is cleared the next backup succeeds and restores.

The sample database carries ~16 MB of incompressible bytes, so with 5 MB parts (the
minimum) a backup is four parts. The bot's S3 client retries (standard mode, 5 retries),
so one transient error is survived; a persistent one must fail cleanly.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest

from backupbot.devkit.manual_restore import restore_by_hand
from backupbot.devkit.s3_fault_proxy import Fault, S3FaultProxy
from backupbot.devkit.sample_data import database_fingerprint
from backupbot.devkit.slack_standin import PostedMessage, SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REQUESTER, REVIEWER, WAIT, Deployment
from tests.acceptance.test_flows import _backup_id, _text, backup_now, request_restore

PART_MB = 5
BLOB_MB = 16  # stored ~16 MB: parts 1-3 full, part 4 the rest


def add_incompressible_rows(url: str, megabytes: int) -> None:
    """A table of random bytes, so the compressed dump spans several parts."""
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE blobs (id int PRIMARY KEY, data bytea NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO blobs VALUES (%s, %s)",
                [(i, os.urandom(256 << 10)) for i in range(megabytes * 4)],
            )


@pytest.fixture(scope="module")
def moto(s3_endpoint: str) -> Any:
    """A client of moto itself, not of the proxy: what is really in the bucket."""
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture(scope="module")
def fault_bucket(moto: Any) -> str:
    name = f"faults-{secrets.token_hex(4)}"
    moto.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def proxy(s3_endpoint: str) -> Iterator[S3FaultProxy]:
    with S3FaultProxy(s3_endpoint) as started:
        yield started


@pytest.fixture(scope="module")
def dep(
    pg: Any,
    proxy: S3FaultProxy,
    fault_bucket: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """`serve` (Socket Mode, PostgreSQL state) with storage.s3 behind the proxy."""
    url, _counts = source_database(pg, "faults")
    add_incompressible_rows(url, BLOB_MB)
    with SlackStandin() as standin:
        deployment = fresh_deployment(
            ("socket", "postgresql"),
            pg,
            standin,
            tmp_path_factory.mktemp("faults-s3"),
            databases={"app": url},
            extra={"backup": {"verify": "full"}},
        )
        deployment.config["storage"] = {
            "s3": {
                "bucket": fault_bucket,
                "prefix": "team/",
                "region": "us-east-1",
                "endpoint_url": "${S3_ENDPOINT_URL}",
                "part_size_mb": PART_MB,
                "max_concurrency": 2,
            }
        }
        deployment.exported.update(
            S3_ENDPOINT_URL=proxy.url,
            AWS_ACCESS_KEY_ID="backupbot-test",
            AWS_SECRET_ACCESS_KEY="backupbot-test-secret",
        )
        deployment.start()
        yield deployment
        deployment.close()


@pytest.fixture(autouse=True)
def _faults_cleared(proxy: S3FaultProxy) -> Iterator[None]:
    proxy.clear()
    proxy.forget()
    yield
    proxy.clear()


# -- what the bucket holds --------------------------------------------------------------


def keys_of(moto: Any, bucket: str, backup_id: str) -> list[str]:
    resp = moto.list_objects_v2(Bucket=bucket, Prefix="team/")
    return sorted(o["Key"] for o in resp.get("Contents", []) if backup_id in o["Key"])


def open_uploads(moto: Any, bucket: str) -> list[str]:
    resp = moto.list_multipart_uploads(Bucket=bucket)
    return [u["Key"] for u in resp.get("Uploads", [])]


def part_tries(proxy: S3FaultProxy, part: int) -> list[str]:
    """What the proxy did with each try of UploadPart `part`, in order."""
    return [s.action for s in proxy.seen("UploadPart") if s.request.part_number == part]


# -- the checks every fault shares -------------------------------------------------------


def assert_failed_cleanly(
    dep: Deployment, message: PostedMessage, moto: Any, bucket: str, *words: str
) -> str:
    """The backup in `message` failed, said so plainly, was recorded, and left nothing."""
    backup_id = _backup_id(message.text)
    shown = _text(message)
    assert message.text.startswith("Backup of app failed"), shown
    assert "succeeded" not in shown
    for word in words:
        assert word in message.text, message.text
    # plain words: no endpoint URL, upload id or Python exception text
    for leak in ("http://", "uploadId", "botocore", "Traceback", "IncompleteRead"):
        assert leak not in message.text, message.text
    failed = dep.wait_incident(lambda i: i.action == "backup.failed" and i.backup_id == backup_id)
    assert failed.details["error"] in message.text
    assert not [
        i for i in dep.incidents() if i.action == "backup.succeeded" and i.backup_id == backup_id
    ]
    assert keys_of(moto, bucket, backup_id) == []
    assert open_uploads(moto, bucket) == []
    assert "backupbot-test-secret" not in dep.serve.log_text()  # type: ignore[union-attr]
    return backup_id


def assert_good_backup(
    dep: Deployment, message: PostedMessage, moto: Any, bucket: str, pg: Any, tmp: Path
) -> str:
    """The backup in `message` succeeded, is whole in the bucket, and restores by hand
    (zstd | pg_restore, no backupbot) to exactly the source's rows."""
    assert message.text.startswith("Backup of app succeeded"), _text(message)
    backup_id = _backup_id(message.text)
    dep.wait_incident(lambda i: i.action == "backup.succeeded" and i.backup_id == backup_id)
    keys = keys_of(moto, bucket, backup_id)
    assert [k.rsplit("-", 1)[-1] for k in keys] == [
        f"{backup_id}.dump.zst",
        f"{backup_id}.manifest.json",
    ]
    assert open_uploads(moto, bucket) == []
    artifact = tmp / f"{backup_id}.dump.zst"
    moto.download_file(bucket, keys[0], str(artifact))
    target = f"faults_restored_{backup_id}"
    target_url = pg.create_database(target)
    try:
        restore_by_hand(artifact, target_url)
        source = dep.exported["APP_DATABASE_URL"]
        assert database_fingerprint(target_url) == database_fingerprint(source)
    finally:
        pg.drop_database(target)
    return backup_id


def assert_still_serving(dep: Deployment, moto: Any, bucket: str, pg: Any, tmp: Path) -> None:
    """With the fault cleared, the next `/backup now` succeeds and restores."""
    assert_good_backup(dep, backup_now(dep), moto, bucket, pg, tmp)


# -- UploadPart ----------------------------------------------------------------------------


def test_one_transient_500_on_a_part_is_retried_and_the_backup_is_good(
    dep: Deployment,
    proxy: S3FaultProxy,
    moto: Any,
    fault_bucket: str,
    pg: Any,
    tmp_path: Path,
) -> None:
    proxy.inject(Fault.error("UploadPart", part_number=2, times=1))
    message = backup_now(dep)
    assert part_tries(proxy, 2)[-2:] == ["error", "forwarded"]
    backup_id = assert_good_backup(dep, message, moto, fault_bucket, pg, tmp_path)
    assert len(proxy.seen("UploadPart")) >= 4 + 1  # several parts, one of them tried twice

    # and the bot itself restores it, after a second person approves
    target = f"faults_bot_restored_{backup_id}"
    pg.drop_database(target)
    request, restore_id = request_restore(dep, f"app {backup_id} --into {target}")
    dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
    dep.wait_message(lambda m: m.ts == request.ts and "Restored and verified" in _text(m))
    assert database_fingerprint(pg.url(target)) == database_fingerprint(
        dep.exported["APP_DATABASE_URL"]
    )
    pg.drop_database(target)


def test_persistent_500_on_part_3_fails_cleanly_and_the_bot_keeps_serving(
    dep: Deployment,
    proxy: S3FaultProxy,
    moto: Any,
    fault_bucket: str,
    pg: Any,
    tmp_path: Path,
) -> None:
    proxy.inject(Fault.error("UploadPart", part_number=3))
    message = backup_now(dep)
    assert_failed_cleanly(dep, message, moto, fault_bucket, "S3", "again")
    tries = part_tries(proxy, 3)
    assert len(tries) == 6 and set(tries) == {"error"}  # the first try and 5 retries
    assert proxy.seen("AbortMultipartUpload")[-1].status == 204
    proxy.clear()
    assert_still_serving(dep, moto, fault_bucket, pg, tmp_path)


def test_a_connection_dropped_on_every_try_of_a_part_fails_cleanly(
    dep: Deployment,
    proxy: S3FaultProxy,
    moto: Any,
    fault_bucket: str,
    pg: Any,
    tmp_path: Path,
) -> None:
    proxy.inject(Fault.drop("UploadPart", part_number=2))
    message = backup_now(dep)
    assert_failed_cleanly(dep, message, moto, fault_bucket, "connection to S3", "again")
    assert set(part_tries(proxy, 2)) == {"drop"}
    proxy.clear()
    assert_still_serving(dep, moto, fault_bucket, pg, tmp_path)


def test_one_dropped_connection_is_retried_and_the_backup_is_good(
    dep: Deployment,
    proxy: S3FaultProxy,
    moto: Any,
    fault_bucket: str,
    pg: Any,
    tmp_path: Path,
) -> None:
    proxy.inject(Fault.drop("UploadPart", part_number=1, times=1))
    message = backup_now(dep)
    assert part_tries(proxy, 1)[-2:] == ["drop", "forwarded"]
    backup_id = assert_good_backup(dep, message, moto, fault_bucket, pg, tmp_path)
    # verify: full reads the stored copy back, and the manifest says so
    reads = [s for s in proxy.seen("GetObject") if s.request.key.endswith(f"{backup_id}.dump.zst")]
    assert [s.status for s in reads] == [200]
    manifest_key = keys_of(moto, fault_bucket, backup_id)[1]
    verified = json.loads(moto.get_object(Bucket=fault_bucket, Key=manifest_key)["Body"].read())[
        "verified"
    ]
    assert verified["method"] == "full" and verified["read_back"] is True
    assert "s3_checksum" not in verified


# -- CompleteMultipartUpload performed, but the client told it failed ------------------------


def test_a_completion_answered_500_once_then_accepted_on_retry_is_verified_and_good(
    dep: Deployment,
    proxy: S3FaultProxy,
    moto: Any,
    fault_bucket: str,
    pg: Any,
    tmp_path: Path,
) -> None:
    """moto accepts a repeated CompleteMultipartUpload of the upload it just completed."""
    proxy.inject(Fault.forward_then_error("CompleteMultipartUpload", times=1))
    message = backup_now(dep)
    tries = [s.action for s in proxy.seen("CompleteMultipartUpload")][-2:]
    assert tries == ["forward_then_error", "forwarded"]
    assert_good_backup(dep, message, moto, fault_bucket, pg, tmp_path)


def test_a_completion_answered_500_then_no_such_upload_ends_verified_never_half_done(
    dep: Deployment,
    proxy: S3FaultProxy,
    moto: Any,
    fault_bucket: str,
    pg: Any,
    tmp_path: Path,
) -> None:
    """As S3 can: the first completion is performed but answered 500; the retry finds the
    upload id gone (NoSuchUpload). The object is there and whole: the bot checks it and
    verifies it by reading it back, rather than deleting a good backup or keeping an
    unverified one."""
    proxy.inject(Fault.forward_then_error("CompleteMultipartUpload", times=1))
    proxy.inject(Fault.no_such_upload())
    message = backup_now(dep)
    tries = [s.action for s in proxy.seen("CompleteMultipartUpload")][-2:]
    assert tries == ["forward_then_error", "error"]
    backup_id = assert_good_backup(dep, message, moto, fault_bucket, pg, tmp_path)
    artifact_reads = [
        s for s in proxy.seen("GetObject") if backup_id in s.request.key and s.status == 200
    ]
    assert artifact_reads, "the backup was not read back to verify it"


def test_a_completion_performed_but_answered_500_on_every_try_fails_and_removes_the_object(
    dep: Deployment,
    proxy: S3FaultProxy,
    moto: Any,
    fault_bucket: str,
    pg: Any,
    tmp_path: Path,
) -> None:
    proxy.inject(Fault.forward_then_error("CompleteMultipartUpload"))
    message = backup_now(dep)
    # the server did complete it: the object existed until the bot removed it
    assert [s.status for s in proxy.seen("CompleteMultipartUpload")][-6:] == [500] * 6
    backup_id = assert_failed_cleanly(dep, message, moto, fault_bucket, "S3", "again")
    deletes = [s for s in proxy.seen("DeleteObject") if backup_id in s.request.key]
    assert any(s.request.key.endswith(".dump.zst") for s in deletes)
    proxy.clear()
    assert_still_serving(dep, moto, fault_bucket, pg, tmp_path)


# -- the verification read-back ---------------------------------------------------------------


def test_a_truncated_verification_download_fails_and_removes_the_object(
    dep: Deployment,
    proxy: S3FaultProxy,
    moto: Any,
    fault_bucket: str,
    pg: Any,
    tmp_path: Path,
) -> None:
    proxy.inject(Fault.truncate("GetObject", key_suffix=".dump.zst", keep=0.6))
    message = backup_now(dep)
    assert_failed_cleanly(dep, message, moto, fault_bucket, "verify", "again")
    assert [s.action for s in proxy.seen("GetObject")][-1] == "truncate"
    proxy.clear()
    assert_still_serving(dep, moto, fault_bucket, pg, tmp_path)


# -- slow parts ---------------------------------------------------------------------------------


def test_held_parts_keep_the_backup_running_and_a_second_one_refused_until_they_go_through(
    dep: Deployment,
    proxy: S3FaultProxy,
    moto: Any,
    fault_bucket: str,
    pg: Any,
    tmp_path: Path,
) -> None:
    """Every part is slowed (held until released): meanwhile the backup is running, a
    second `/backup now` is refused, and no part of it is visible; once released, the
    backup finishes and is good."""
    slow = proxy.inject(Fault.delay("UploadPart", seconds=WAIT))
    before = len(proxy.arrived("UploadPart"))
    answer = dep.slash(REQUESTER, "now app")
    backup_id = _backup_id(_text(answer.json()))
    assert proxy.wait_for(lambda: len(proxy.arrived("UploadPart")) > before, WAIT)
    refused = _text(dep.slash(REQUESTER, "now app").json())
    assert "already running" in refused and backup_id in refused
    assert keys_of(moto, fault_bucket, backup_id) == []
    slow.release()
    message = dep.wait_message(
        lambda m: backup_id in _text(m) and ("succeeded" in m.text or "failed" in m.text)
    )
    assert_good_backup(dep, message, moto, fault_bucket, pg, tmp_path)
    assert slow.hits >= 1
    assert {s.action for s in proxy.seen("UploadPart")} == {"forwarded"}
