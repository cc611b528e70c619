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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backupbot.devkit.s3_fault_proxy import Fault, S3FaultProxy
from backupbot.devkit.sample_data import database_fingerprint
from tests.acceptance.harness import REQUESTER, REVIEWER, WAIT, Deployment
from tests.acceptance.s3_world import (
    assert_failed_cleanly,
    assert_good_backup,
    keys_of,
    s3_fault_deployment,
)
from tests.acceptance.test_flows import _backup_id, _text, backup_now, request_restore

pytestmark = pytest.mark.usefixtures("cleared_proxy")


@pytest.fixture(scope="module")
def dep(
    pg: Any,
    proxy: S3FaultProxy,
    fault_bucket: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """`serve` (Socket Mode, PostgreSQL state) with storage.s3 behind the proxy."""
    with s3_fault_deployment(
        ("socket", "postgresql"),
        pg,
        proxy,
        fault_bucket,
        tmp_path_factory.mktemp("faults-s3"),
        "faults",
        extra={"backup": {"verify": "full"}},
    ) as deployment:
        yield deployment


def part_tries(proxy: S3FaultProxy, part: int) -> list[str]:
    """What the proxy did with each try of UploadPart `part`, in order."""
    return [s.action for s in proxy.seen("UploadPart") if s.request.part_number == part]


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
