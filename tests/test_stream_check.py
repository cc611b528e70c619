"""`backup.verify: checksums` checks the archive on its way to the store (`CheckingWriter`):
what the read-back catches in the archive itself is caught before the commit."""

from __future__ import annotations

from typing import Any

import pytest

from backupbot.errors import VerificationFailed
from backupbot.storage.local_store import LocalStore
from backupbot.storage.streamcheck import CheckingWriter
from tests.test_verify import stored

__all__ = ["stored"]  # the fixture: a real backup's artifact in a local store


def _write_through(s: dict[str, Any], data: bytes, tables: dict[str, int] | None = None) -> Any:
    """`data` through a CheckingWriter into a second store; its verdict, then commit."""
    store = LocalStore(s["path"].parent / "second")
    writer = CheckingWriter(store.open_writer("a.dump.zst"), s["binaries"], "the test")
    try:
        for i in range(0, len(data), 64 << 10):
            writer.write(data[i : i + 64 << 10])
        result = writer.verified(s["expected"], s["tables"] if tables is None else tables)
        writer.commit()
    except BaseException:
        writer.abort()
        assert store.list_keys() == []
        raise
    assert store.get_bytes("a.dump.zst") == data
    return result


def test_the_archive_written_checks_out_with_every_table(stored: dict[str, Any]) -> None:
    result = _write_through(stored, stored["path"].read_bytes())
    assert result.tables_with_data == len(stored["tables"]) and result.toc_entries > 0


def test_a_flipped_byte_is_caught_before_the_commit(stored: dict[str, Any]) -> None:
    data = bytearray(stored["path"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(VerificationFailed, match=r"corrupt|decompresses to"):
        _write_through(stored, bytes(data))


def test_a_truncated_archive_is_caught(stored: dict[str, Any]) -> None:
    data = stored["path"].read_bytes()
    with pytest.raises(VerificationFailed, match="truncated"):
        _write_through(stored, data[: len(data) - 100])


def test_a_table_missing_from_the_archive_is_caught(stored: dict[str, Any]) -> None:
    tables = {**stored["tables"], "public.Ghost": 3}
    with pytest.raises(VerificationFailed, match=r"no data for 1 table\(s\): public.Ghost"):
        _write_through(stored, stored["path"].read_bytes(), tables)
