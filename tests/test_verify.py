"""Verification reads the stored copy back: any change to it is caught and named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backupbot.errors import VerificationFailed
from backupbot.storage.dumpstream import StreamResult, verify_artifact
from backupbot.storage.local_store import LocalStore
from backupbot.storage.pg_binaries import find_binaries
from tests.conftest import make_settings


@pytest.fixture
def stored(sample_db: dict[str, Any], tmp_path: Path, bot_factory: Any) -> dict[str, Any]:
    settings = make_settings(
        state_url=f"sqlite:///{tmp_path}/s.db",
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=[{"name": "app", "url": sample_db["url"]}],
    )
    record = bot_factory(settings).services.backups.backup_now("app", "UALICE")
    assert record.status == "succeeded"
    store = LocalStore(tmp_path / "backups")
    expected = StreamResult(record.raw_size, record.stored_size, record.sha256)
    return {
        "store": store,
        "key": record.artifact_key,
        "expected": expected,
        "binaries": find_binaries(record.manifest["server_version_num"] // 10000),
        "tables": record.manifest["row_counts"],
        "path": tmp_path / "backups" / record.artifact_key,
    }


def _verify(s: dict[str, Any], **overrides: Any) -> Any:
    args = {**s, **overrides}
    return verify_artifact(
        args["store"], args["key"], args["expected"], args["binaries"], args["tables"]
    )


def test_an_untouched_artifact_verifies_with_every_table_present(stored: dict[str, Any]) -> None:
    result = _verify(stored)
    assert result.tables_with_data == len(stored["tables"])


def test_a_flipped_byte_is_caught(stored: dict[str, Any]) -> None:
    data = bytearray(stored["path"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored["path"].write_bytes(bytes(data))
    with pytest.raises(VerificationFailed, match=r"corrupt|does not match"):
        _verify(stored)


def test_a_truncated_artifact_is_caught(stored: dict[str, Any]) -> None:
    data = stored["path"].read_bytes()
    stored["path"].write_bytes(data[: len(data) - 100])
    with pytest.raises(VerificationFailed, match=r"truncated|does not match"):
        _verify(stored)


def test_a_table_missing_from_the_archive_is_caught(stored: dict[str, Any]) -> None:
    tables = {**stored["tables"], "public.Ghost": 3}
    with pytest.raises(VerificationFailed, match=r"no data for 1 table\(s\): public.Ghost"):
        _verify(stored, tables=tables)


def test_a_vanished_artifact_is_caught(stored: dict[str, Any]) -> None:
    stored["path"].unlink()
    with pytest.raises(VerificationFailed, match="vanished"):
        _verify(stored)
