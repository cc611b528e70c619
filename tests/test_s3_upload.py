"""The S3 writer with checksums, on moto's server: every part carries its SHA-256, the
composite checksum S3 keeps is the writer's own, and parts are written from reused
buffers (memory: at most `max_concurrency` parts in flight plus the one being filled)."""

from __future__ import annotations

import base64
import hashlib
import os
import tracemalloc
from typing import Any

import pytest
from botocore.exceptions import ClientError

from backupbot.errors import StoreError, VerificationFailed
from backupbot.storage.s3_store import S3Store
from backupbot.storage.s3_upload import composite_sha256
from tests.conftest import s3_keys

MB = 1 << 20


def test_the_composite_checksum_s3_keeps_is_the_writers_own(s3: Any, bucket: str) -> None:
    data = os.urandom(11 * MB + 123)
    sent: list[tuple[type, int]] = []

    def body(params: dict[str, Any], **_kwargs: Any) -> None:
        sent.append((type(params["Body"]), len(params["Body"])))

    store = S3Store(s3, bucket, "team/", part_size=5 * MB, max_concurrency=2, checksums=True)
    s3.meta.events.register("provide-client-params.s3.UploadPart", body)
    try:
        writer = store.open_writer("app/x.dump.zst")
        for i in range(0, len(data), 100_000):  # writes that straddle part boundaries
            writer.write(data[i : i + 100_000])
        writer.commit()
    finally:
        s3.meta.events.unregister("provide-client-params.s3.UploadPart", body)
    # the last, short part too is sent from its buffer (shrunk in place), not a copy
    assert sorted(sent, key=lambda t: -t[1]) == [
        (bytearray, 5 * MB),
        (bytearray, 5 * MB),
        (bytearray, MB + 123),
    ]
    parts = [data[i : i + 5 * MB] for i in range(0, len(data), 5 * MB)]
    expected = composite_sha256([hashlib.sha256(p).digest() for p in parts])
    assert writer.checksum == expected and expected.endswith("-3")
    head = s3.head_object(Bucket=bucket, Key="team/app/x.dump.zst", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"].split("-")[0] == expected.split("-")[0]
    assert b"".join(store.read_chunks("app/x.dump.zst")) == data


def test_an_empty_artifact_is_one_empty_part_with_its_checksum(s3: Any, bucket: str) -> None:
    store = S3Store(s3, bucket, checksums=True)
    writer = store.open_writer("empty")
    writer.commit()
    empty = hashlib.sha256(b"").digest()
    assert writer.checksum == f"{base64.b64encode(hashlib.sha256(empty).digest()).decode()}-1"
    assert store.get_bytes("empty") == b""


def _held_by(snapshot: tracemalloc.Snapshot, *parts: str) -> int:
    """Bytes allocated (and still held) by code in files whose path has one of `parts`."""
    return sum(
        stat.size
        for stat in snapshot.statistics("filename")
        if any(p in stat.traceback[0].filename for p in parts)
    )


def test_parts_are_sent_from_reused_buffers_in_bounded_memory(s3: Any, bucket: str) -> None:
    """40 MB in 5 MB parts, 2 in flight: every part is sent from one of 3 buffers (2 in
    flight, 1 being filled), allocated once (no allocation, no copy per part); each time a
    part is sent, the writer holds at most those 3 and the S3 client no copy of a part.
    (The moto server in this process keeps its own copies: not counted.)"""
    held: list[tuple[int, int]] = []
    bodies: set[int] = set()

    def body(params: dict[str, Any], **_kwargs: Any) -> None:
        assert isinstance(params["Body"], bytearray)  # the buffer itself, not a copy
        bodies.add(id(params["Body"]))

    def measure(**_kwargs: Any) -> None:
        snapshot = tracemalloc.take_snapshot()
        held.append(
            (
                _held_by(snapshot, "backupbot/storage/"),
                _held_by(snapshot, "botocore", "urllib3", "http/client"),
            )
        )

    s3.meta.events.register("before-send.s3.UploadPart", measure)
    s3.meta.events.register("provide-client-params.s3.UploadPart", body)
    store = S3Store(s3, bucket, part_size=5 * MB, max_concurrency=2, checksums=True)
    chunk = os.urandom(MB)
    tracemalloc.start()
    try:
        writer = store.open_writer("big")
        for _ in range(40):
            writer.write(chunk)
        writer.commit()
    finally:
        tracemalloc.stop()
        s3.meta.events.unregister("before-send.s3.UploadPart", measure)
        s3.meta.events.unregister("provide-client-params.s3.UploadPart", body)
    assert writer.checksum is not None and writer.checksum.endswith("-8")
    assert len(held) >= 8 and len(bodies) <= 3
    assert max(h for h, _client in held) <= 3 * 5 * MB + MB, held
    assert max(client for _h, client in held) < MB, held


def test_a_service_keeping_no_checksum_fails_naming_verify_full(s3: Any, bucket: str) -> None:
    """An S3 look-alike without additional checksums answers HeadObject without one: the
    upload cannot be proven, so it is discarded, and the error names the setting."""

    def strip(parsed: dict[str, Any], **_kwargs: Any) -> None:
        parsed.pop("ChecksumSHA256", None)

    s3.meta.events.register("after-call.s3.HeadObject", strip)
    store = S3Store(s3, bucket, part_size=5 * MB, checksums=True)
    writer = store.open_writer("app/n.dump.zst")
    try:
        writer.write(os.urandom(MB))
        with pytest.raises(VerificationFailed, match=r"set backup\.verify: full"):
            writer.commit()
    finally:
        s3.meta.events.unregister("after-call.s3.HeadObject", strip)
    assert s3_keys(s3, bucket) == []
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_part_s3_refuses_as_bad_digest_fails_in_plain_words(s3: Any, bucket: str) -> None:
    """What S3 answers when a part's bytes do not hash to the SHA-256 sent with it."""

    def refuse_part_2(params: dict[str, Any], **_kwargs: Any) -> None:
        if params["PartNumber"] == 2:
            error = {"Code": "BadDigest", "Message": "The SHA256 you specified did not match"}
            raise ClientError({"Error": error}, "UploadPart")

    s3.meta.events.register("provide-client-params.s3.UploadPart", refuse_part_2)
    store = S3Store(s3, bucket, part_size=5 * MB, max_concurrency=1, checksums=True)
    writer = store.open_writer("app/b.dump.zst")
    try:
        with pytest.raises(StoreError, match="damaged on the way"):
            for _ in range(3):
                writer.write(os.urandom(5 * MB))
            writer.commit()
    finally:
        writer.abort()
        s3.meta.events.unregister("provide-client-params.s3.UploadPart", refuse_part_2)
    assert s3_keys(s3, bucket) == []
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
