"""The artifact store contract, on the local disk and on a real S3 server: nothing is
visible before commit, and any failure leaves no object and no open multipart upload."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from backupbot.errors import StoreError
from backupbot.storage.local_store import LocalStore
from backupbot.storage.s3_store import S3Store
from tests.conftest import s3_keys

MB = 1 << 20


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    s3 = request.getfixturevalue("s3")
    bucket = request.getfixturevalue("bucket")
    return S3Store(s3, bucket, "team/", part_size=5 * MB, max_concurrency=2)


def test_an_artifact_is_invisible_until_commit_and_complete_after(store: Any) -> None:
    data = os.urandom(11 * MB + 123)
    writer = store.open_writer("app/x.dump.zst")
    for i in range(0, len(data), MB):
        writer.write(data[i : i + MB])
    assert not store.exists("app/x.dump.zst")
    writer.commit()
    assert store.exists("app/x.dump.zst")
    assert b"".join(store.read_chunks("app/x.dump.zst")) == data
    assert store.list_keys("app/") == ["app/x.dump.zst"]


def test_abort_leaves_nothing_behind(store: Any) -> None:
    writer = store.open_writer("app/y.dump.zst")
    writer.write(os.urandom(6 * MB))
    writer.abort()
    assert store.list_keys() == []
    if isinstance(store, S3Store):
        assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_an_s3_error_midway_aborts_the_multipart_upload(s3: Any, bucket: str) -> None:
    calls = {"n": 0}

    def fail_second_part(**_kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "boom"}}, "UploadPart")

    s3.meta.events.register("before-call.s3.UploadPart", fail_second_part)
    store = S3Store(s3, bucket, "team/", part_size=5 * MB, max_concurrency=1)
    writer = store.open_writer("app/z.dump.zst")
    with pytest.raises(StoreError, match="S3 was unavailable") as info:
        for _ in range(4):
            writer.write(os.urandom(5 * MB))
        writer.commit()
    assert info.value.permanent is False
    writer.abort()
    assert s3_keys(s3, bucket) == []
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    s3.meta.events.unregister("before-call.s3.UploadPart", fail_second_part)


def test_a_missing_bucket_is_named_with_the_fix(s3: Any) -> None:
    store = S3Store(s3, "no-such-bucket-xyz")
    with pytest.raises(StoreError, match="bucket 'no-such-bucket-xyz' does not exist"):
        store.check()
    with pytest.raises(StoreError, match="does not exist"):
        store.open_writer("app/a.dump.zst")


def test_local_keys_cannot_escape_the_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="outside the store"):
        LocalStore(tmp_path / "store").open_writer("../escape.dump.zst")
