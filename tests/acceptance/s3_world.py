"""The S3 suites' shared world: a real `backupbot serve` whose `storage.s3` points at the
fault proxy in front of moto's server, a database large enough for several parts, and the
checks every S3 test shares (what the bucket holds, a clean failure, a good backup that
restores by hand). Fixtures (`moto`, `fault_bucket`, `proxy`, `cleared_proxy`) are in
`conftest.py`; `test_faults_s3.py` (read-back faults) and `test_s3_checksums.py` (the
default verification) use them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from backupbot.devkit.manual_restore import restore_by_hand
from backupbot.devkit.s3_fault_proxy import S3FaultProxy
from backupbot.devkit.sample_data import database_fingerprint
from backupbot.devkit.slack_standin import PostedMessage, SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import Deployment
from tests.acceptance.test_flows import _backup_id, _text

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


@contextlib.contextmanager
def s3_fault_deployment(
    kind: tuple[str, str],
    pg: Any,
    proxy: S3FaultProxy,
    bucket: str,
    workdir: Path,
    prefix: str,
    extra: dict[str, Any] | None = None,
) -> Iterator[Deployment]:
    """A started `serve` of one database `app` (BLOB_MB of incompressible rows) on
    `kind` (transport, state), storing in `bucket` under `team/` through `proxy`, in
    PART_MB parts, two at a time; `extra`: more config sections (e.g. `backup`)."""
    url, _counts = source_database(pg, prefix)
    add_incompressible_rows(url, BLOB_MB)
    with SlackStandin() as standin:
        deployment = fresh_deployment(
            kind, pg, standin, workdir, databases={"app": url}, extra=extra or {}
        )
        deployment.config["storage"] = {
            "s3": {
                "bucket": bucket,
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
        try:
            yield deployment
        finally:
            deployment.close()


def keys_of(moto: Any, bucket: str, backup_id: str) -> list[str]:
    resp = moto.list_objects_v2(Bucket=bucket, Prefix="team/")
    return sorted(o["Key"] for o in resp.get("Contents", []) if backup_id in o["Key"])


def open_uploads(moto: Any, bucket: str) -> list[str]:
    resp = moto.list_multipart_uploads(Bucket=bucket)
    return [u["Key"] for u in resp.get("Uploads", [])]


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
    (no backupbot: zstd | pg_restore, or zstd | tar -x then pg_restore -j for a parallel
    dump's `.tar.zst`) to exactly the source's rows."""
    assert message.text.startswith("Backup of app succeeded"), _text(message)
    backup_id = _backup_id(message.text)
    dep.wait_incident(lambda i: i.action == "backup.succeeded" and i.backup_id == backup_id)
    keys = keys_of(moto, bucket, backup_id)
    ext = ".tar.zst" if any(k.endswith(".tar.zst") for k in keys) else ".dump.zst"
    assert sorted(k.rsplit("-", 1)[-1] for k in keys) == sorted(
        [f"{backup_id}{ext}", f"{backup_id}.manifest.json"]
    )
    assert open_uploads(moto, bucket) == []
    artifact = tmp / f"{backup_id}{ext}"
    [artifact_key] = [k for k in keys if k.endswith(ext)]
    moto.download_file(bucket, artifact_key, str(artifact))
    target = f"faults_restored_{backup_id}"
    target_url = pg.create_database(target)
    try:
        restore_by_hand(artifact, target_url)
        source = dep.exported["APP_DATABASE_URL"]
        assert database_fingerprint(target_url) == database_fingerprint(source)
    finally:
        pg.drop_database(target)
    return backup_id
