"""Unpacking an artifact for a restore: read + SHA-256, zstd and the file write run in
three threads (`BackgroundWriter`); the result is byte for byte the archive, and a damaged
artifact or a failing disk leaves no file and says why."""

from __future__ import annotations

import errno
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest
import zstandard

from backupbot.errors import VerificationFailed
from backupbot.storage.bgwrite import BackgroundWriter
from backupbot.storage.dumpstream import unpack_artifact
from backupbot.storage.local_store import LocalStore

KEY = "app/a.dump.zst"


@pytest.fixture
def artifact(tmp_path: Path) -> dict[str, Any]:
    """A 12 MiB archive (half random, half repetitive) stored as one zstd frame."""
    raw = os.urandom(6 << 20) + b"COPY public.t (id) FROM stdin;\n" * (200_000)
    stored = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(raw)
    store = LocalStore(tmp_path / "store")
    store.put_bytes(KEY, stored)
    return {
        "store": store,
        "raw": raw,
        "stored": stored,
        "expected": {
            "sha256": hashlib.sha256(stored).hexdigest(),
            "stored_size": len(stored),
            "raw_size": len(raw),
        },
        "dest": tmp_path / "work" / "archive.dump",
    }


def _unpack(a: dict[str, Any], **override: Any) -> Any:
    a["dest"].parent.mkdir(exist_ok=True)
    return unpack_artifact(a["store"], KEY, a["dest"], **{**a["expected"], **override})


def test_the_unpacked_file_is_the_archive_byte_for_byte(artifact: dict[str, Any]) -> None:
    done = _unpack(artifact)
    assert artifact["dest"].read_bytes() == artifact["raw"]
    assert (done.raw_size, done.stored_size) == (len(artifact["raw"]), len(artifact["stored"]))
    assert done.sha256 == artifact["expected"]["sha256"]


def test_a_flipped_byte_leaves_no_file_and_nothing_restorable(artifact: dict[str, Any]) -> None:
    damaged = bytearray(artifact["stored"])
    damaged[len(damaged) // 3] ^= 0x01
    artifact["store"].put_bytes(KEY, bytes(damaged))
    with pytest.raises(VerificationFailed, match=r"[Nn]othing was restored"):
        _unpack(artifact)
    assert not artifact["dest"].exists()


def test_an_artifact_that_unpacks_but_is_not_the_verified_one_is_refused(
    artifact: dict[str, Any],
) -> None:
    other = zstandard.ZstdCompressor(write_checksum=True).compress(artifact["raw"][::-1])
    artifact["store"].put_bytes(KEY, other)
    with pytest.raises(VerificationFailed, match="is not the one that was verified"):
        _unpack(artifact)
    assert not artifact["dest"].exists()


def test_a_short_raw_size_is_refused_even_when_the_bytes_match(artifact: dict[str, Any]) -> None:
    with pytest.raises(VerificationFailed, match="does not unpack to the archive"):
        _unpack(artifact, raw_size=len(artifact["raw"]) - 1)
    assert not artifact["dest"].exists()


class _FullDisk(io.RawIOBase):
    """A file that takes `room` bytes and then fails as a full disk does."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        if len(self.data) + len(b) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.data += b
        return len(b)


def test_a_write_error_reaches_the_producer_and_the_thread_stops() -> None:
    out = _FullDisk(room=5 << 20)
    writer = BackgroundWriter(out, depth=2)  # type: ignore[arg-type]
    with pytest.raises(OSError, match="No space left"), writer:
        for i in range(100):  # 100 MiB offered: the producer must not block forever
            writer.write(bytes([i]) * (1 << 20))
    assert bytes(out.data) == b"".join(bytes([i]) * (1 << 20) for i in range(5))
    assert not writer._thread.is_alive()
