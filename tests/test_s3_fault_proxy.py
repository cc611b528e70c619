"""The S3 fault proxy (in front of moto's server), and the S3 store's writer under the
faults it injects, without the backup service around it: the writer's own contract is
that a failed commit leaves no object and no open multipart upload."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from backupbot.devkit.s3_fault_proxy import Fault, S3FaultProxy, classify
from backupbot.errors import StoreError
from backupbot.storage.s3_store import S3Store
from tests.conftest import s3_keys

MB = 1 << 20


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[S3FaultProxy]:
    with S3FaultProxy(s3_endpoint) as started:
        yield started


@pytest.fixture
def store(proxy: S3FaultProxy, bucket: str) -> S3Store:
    """An S3 store through the proxy, its client retrying as `serve`'s does."""
    client = boto3.client(
        "s3",
        endpoint_url=proxy.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 5, "mode": "standard"}),
    )
    return S3Store(client, bucket, "team/", part_size=5 * MB, max_concurrency=2)


def uploads(s3: Any, bucket: str) -> list[Any]:
    return list(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def write(store: S3Store, key: str, data: bytes) -> None:
    writer = store.open_writer(key)
    try:
        for i in range(0, len(data), MB):
            writer.write(data[i : i + MB])
        writer.commit()
    except BaseException:
        writer.abort()
        raise


def test_requests_are_named_by_s3_operation() -> None:
    assert classify("PUT", "/b/k/x.zst?partNumber=3&uploadId=u1").operation == "UploadPart"
    assert classify("PUT", "/b/k/x.zst?partNumber=3&uploadId=u1").part_number == 3
    assert classify("POST", "/b/k/x.zst?uploads").operation == "CreateMultipartUpload"
    assert classify("POST", "/b/k/x.zst?uploadId=u1").operation == "CompleteMultipartUpload"
    assert classify("DELETE", "/b/k/x.zst?uploadId=u1").operation == "AbortMultipartUpload"
    assert classify("GET", "/b/k/x.zst").operation == "GetObject"
    assert classify("GET", "/b/k/x.zst").key == "k/x.zst"
    assert classify("GET", "/b?list-type=2&prefix=k").operation == "ListObjects"
    assert classify("GET", "/b?uploads").operation == "ListMultipartUploads"


def test_without_rules_the_proxy_is_transparent(store: S3Store, proxy: S3FaultProxy) -> None:
    data = os.urandom(11 * MB + 7)
    write(store, "app/a.dump.zst", data)
    assert store.get_bytes("app/a.dump.zst") == data
    assert sorted(s.request.part_number or 0 for s in proxy.seen("UploadPart")) == [1, 2, 3]
    assert {s.action for s in proxy.seen()} == {"forwarded"}


def test_a_rule_applies_the_given_number_of_times(store: S3Store, proxy: S3FaultProxy) -> None:
    fault = proxy.inject(Fault.error("UploadPart", part_number=2, times=2))
    write(store, "app/b.dump.zst", os.urandom(6 * MB))
    tries = [s.action for s in proxy.seen("UploadPart") if s.request.part_number == 2]
    assert tries == ["error", "error", "forwarded"] and fault.hits == 2


def test_a_held_request_waits_until_released(store: S3Store, proxy: S3FaultProxy) -> None:
    held = proxy.inject(Fault.delay("PutObject", seconds=120))
    done = threading.Event()
    writer = threading.Thread(target=lambda: (store.put_bytes("app/m.json", b"{}"), done.set()))
    writer.start()
    assert proxy.wait_for(lambda: bool(proxy.arrived("PutObject")), 30)
    assert not done.is_set() and proxy.seen("PutObject") == []
    held.release()
    writer.join(30)
    assert done.is_set() and store.get_bytes("app/m.json") == b"{}"


def test_a_completion_performed_then_no_such_upload_on_retry_counts_as_completed(
    store: S3Store, proxy: S3FaultProxy, s3: Any, bucket: str
) -> None:
    proxy.inject(Fault.forward_then_error("CompleteMultipartUpload", times=1))
    proxy.inject(Fault.no_such_upload())
    data = os.urandom(7 * MB)
    write(store, "app/c.dump.zst", data)
    assert [s.status for s in proxy.seen("CompleteMultipartUpload")] == [500, 404]
    assert store.get_bytes("app/c.dump.zst") == data
    assert uploads(s3, bucket) == []


def test_no_such_upload_without_the_object_is_a_failure(
    store: S3Store, proxy: S3FaultProxy, s3: Any, bucket: str
) -> None:
    proxy.inject(Fault.no_such_upload())  # never forwarded: the object was never made
    with pytest.raises(StoreError, match="NoSuchUpload"):
        write(store, "app/d.dump.zst", os.urandom(6 * MB))
    assert s3_keys(s3, bucket) == []
    assert uploads(s3, bucket) == []


def test_a_completion_performed_but_failing_every_try_leaves_no_object(
    store: S3Store, proxy: S3FaultProxy, s3: Any, bucket: str
) -> None:
    proxy.inject(Fault.forward_then_error("CompleteMultipartUpload"))
    with pytest.raises(StoreError, match=r"S3 was unavailable .* try again") as info:
        write(store, "app/e.dump.zst", os.urandom(6 * MB))
    assert info.value.permanent is False
    assert s3_keys(s3, bucket) == []  # the writer itself deleted what S3 completed
    assert uploads(s3, bucket) == []


def test_a_dropped_connection_on_every_try_is_told_plainly(
    store: S3Store, proxy: S3FaultProxy, s3: Any, bucket: str
) -> None:
    proxy.inject(Fault.drop("UploadPart", part_number=1))
    with pytest.raises(StoreError) as info:
        write(store, "app/f.dump.zst", os.urandom(6 * MB))
    assert str(info.value).startswith("The connection to S3 broke while uploading")
    assert "http://" not in str(info.value) and "uploadId" not in str(info.value)
    assert s3_keys(s3, bucket) == [] and uploads(s3, bucket) == []


def test_a_truncated_download_is_an_error_not_a_short_read(
    store: S3Store, proxy: S3FaultProxy
) -> None:
    data = os.urandom(3 * MB)
    write(store, "app/g.dump.zst", data)
    proxy.inject(Fault.truncate("GetObject", key_suffix=".dump.zst", keep=0.5))
    with pytest.raises(StoreError, match="The connection to S3 broke while reading"):
        b"".join(store.read_chunks("app/g.dump.zst"))
    proxy.clear()
    assert store.get_bytes("app/g.dump.zst") == data
