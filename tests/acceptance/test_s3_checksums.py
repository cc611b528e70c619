"""`backup.verify: checksums` (the default) on S3, for real: `backupbot serve` stores its
backups in moto's S3 server through the fault proxy. Every part carries its SHA-256, the
bot compares the composite checksum S3 keeps with its own, and the archive is checked on
its way out, so the stored copy is never downloaded again; a part damaged in flight
fails the backup with nothing kept. (`verify: full`, the read-back, is what
`test_faults_s3.py` runs under.)"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backupbot.devkit.s3_fault_proxy import Fault, S3FaultProxy
from tests.acceptance.harness import Deployment
from tests.acceptance.s3_world import (
    PART_MB,
    assert_failed_cleanly,
    assert_good_backup,
    keys_of,
    s3_fault_deployment,
)
from tests.acceptance.test_flows import _text, backup_now

pytestmark = pytest.mark.usefixtures("cleared_proxy")


@pytest.fixture(scope="module")
def dep(
    pg: Any,
    proxy: S3FaultProxy,
    fault_bucket: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """`serve` (HTTP, SQLite state) with storage.s3 behind the proxy and no
    `backup.verify` setting: the default."""
    with s3_fault_deployment(
        ("http", "sqlite"),
        pg,
        proxy,
        fault_bucket,
        tmp_path_factory.mktemp("s3-checksums"),
        "checksums",
    ) as deployment:
        yield deployment


def _composite(data: bytes, part_size: int) -> str:
    """S3's composite SHA-256 of `data` uploaded in parts of `part_size`, computed here."""
    digests = [
        hashlib.sha256(data[i : i + part_size]).digest() for i in range(0, len(data), part_size)
    ]
    return base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()


def test_a_backup_is_proven_by_s3_checksums_without_reading_it_back(
    dep: Deployment,
    proxy: S3FaultProxy,
    moto: Any,
    fault_bucket: str,
    pg: Any,
    tmp_path: Path,
) -> None:
    message = backup_now(dep)
    backup_id = assert_good_backup(dep, message, moto, fault_bucket, pg, tmp_path)
    artifact_key, manifest_key = keys_of(moto, fault_bucket, backup_id)
    manifest = json.loads(moto.get_object(Bucket=fault_bucket, Key=manifest_key)["Body"].read())
    verified = manifest["verified"]
    assert verified["method"] == "checksums" and verified["read_back"] is False
    assert verified["pg_restore_list"] is True and verified["toc_entries"] > 0

    # the composite checksum recorded is S3's, and is that of the stored bytes
    data = moto.get_object(Bucket=fault_bucket, Key=artifact_key)["Body"].read()
    parts = -(-len(data) // (PART_MB << 20))
    assert parts >= 3
    assert verified["s3_checksum"] == {
        "algorithm": "SHA256",
        "composite": f"{_composite(data, PART_MB << 20)}-{parts}",
    }
    head = moto.head_object(Bucket=fault_bucket, Key=artifact_key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"].split("-")[0] == verified["s3_checksum"]["composite"][:-2]
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()

    # every part went up with its checksum, and the bot never downloaded the artifact
    assert len(proxy.seen("UploadPart")) == parts
    assert [s for s in proxy.seen("GetObject") if s.request.key == artifact_key] == []
    assert "SHA-256 of every part checked by S3, composite checksum matched" in _text(message)


def test_a_part_damaged_in_flight_fails_the_backup_and_nothing_is_kept(
    dep: Deployment,
    proxy: S3FaultProxy,
    moto: Any,
    fault_bucket: str,
    pg: Any,
    tmp_path: Path,
) -> None:
    """The proxy flips a byte of part 2 after the bot signed it, its SHA-256 header
    unchanged. S3 refuses such a part (BadDigest); moto takes it, and keeps a composite
    checksum of what it received: either way the backup fails and nothing stays."""
    proxy.inject(Fault.corrupt("UploadPart", part_number=2))
    message = backup_now(dep)
    backup_id = assert_failed_cleanly(
        dep, message, moto, fault_bucket, "checksum", "not kept", "again"
    )
    assert "corrupt" in {s.action for s in proxy.seen("UploadPart")}
    deletes = [s for s in proxy.seen("DeleteObject") if backup_id in s.request.key]
    assert any(s.request.key.endswith(".dump.zst") for s in deletes)
    proxy.clear()
    assert_good_backup(dep, backup_now(dep), moto, fault_bucket, pg, tmp_path)


def test_a_completion_performed_but_answered_no_such_upload_is_proven_by_its_checksum(
    dep: Deployment,
    proxy: S3FaultProxy,
    moto: Any,
    fault_bucket: str,
    pg: Any,
    tmp_path: Path,
) -> None:
    """The first completion is performed but answered 500, the retry finds the upload id
    gone: the object's stored checksum proves it whole, still without a download."""
    proxy.inject(Fault.forward_then_error("CompleteMultipartUpload", times=1))
    proxy.inject(Fault.no_such_upload())
    message = backup_now(dep)
    tries = [s.action for s in proxy.seen("CompleteMultipartUpload")][-2:]
    assert tries == ["forward_then_error", "error"]
    backup_id = assert_good_backup(dep, message, moto, fault_bucket, pg, tmp_path)
    artifact_key = keys_of(moto, fault_bucket, backup_id)[0]
    assert [s for s in proxy.seen("GetObject") if s.request.key == artifact_key] == []


def test_a_parallel_dump_on_s3_is_verified_by_reading_it_back_and_restores_by_hand(
    pg: Any,
    proxy: S3FaultProxy,
    moto: Any,
    fault_bucket: str,
    tmp_path: Path,
) -> None:
    """`backup.jobs: 2` stores a `.tar.zst`, whose archive cannot be listed on its way out
    (pg_restore reads a directory's toc.dat, not a tar stream): under the default
    `verify: checksums` it is read back and checked, and the manifest says so."""
    with s3_fault_deployment(
        ("http", "sqlite"),
        pg,
        proxy,
        fault_bucket,
        tmp_path / "deploy",
        "pardump_s3",
        extra={"backup": {"jobs": 2}},
    ) as parallel:
        message = backup_now(parallel)
        backup_id = assert_good_backup(parallel, message, moto, fault_bucket, pg, tmp_path)
    manifest_key, artifact_key = keys_of(moto, fault_bucket, backup_id)
    assert artifact_key.endswith(".tar.zst")
    manifest = json.loads(moto.get_object(Bucket=fault_bucket, Key=manifest_key)["Body"].read())
    assert manifest["dump_format"] == "directory-tar" and manifest["dump_jobs"] == 2
    verified = manifest["verified"]
    assert verified["method"] == "full" and verified["read_back"] is True
    assert verified["pg_restore_list"] is True
    reads = [s for s in proxy.seen("GetObject") if s.request.key == artifact_key]
    assert [s.status for s in reads] == [200]
