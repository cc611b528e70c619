"""A damaged or replaced artifact, restored by the real CLI into a database that does not
exist yet: the restore creates that target while the artifact downloads and unpacks, so
the check that fails at the end of the download must drop it again.

Nothing is restored, no database is left behind, and the CLI and the incident log say why
and what state the target is in.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import zstandard

from backupbot.devkit.serve_process import write_config
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import Deployment


@pytest.fixture
def dep(pg: Any, tmp_path: Path) -> Iterator[Deployment]:
    """An installation (HTTP, SQLite state) used through its CLI, as during an outage of
    the bot, with one backup."""
    url, _counts = source_database(pg, "corrupt")
    with SlackStandin() as standin:
        deployment = fresh_deployment(
            ("http", "sqlite"), pg, standin, tmp_path / "deploy", databases={"app": url}
        )
        write_config(deployment.config_path, deployment.config)
        deployment.cli("backup", "now", "app")
        yield deployment
        deployment.close()


def _artifact(dep: Deployment) -> Path:
    [artifact] = sorted(dep.store_dir.glob("app/*.dump.zst"))
    return artifact


def _exists(pg: Any, name: str) -> bool:
    try:
        psycopg.connect(pg.url(name), connect_timeout=10).close()
    except psycopg.OperationalError as exc:
        assert "does not exist" in str(exc), exc
        return False
    return True


def _restore_into_new(dep: Deployment, pg: Any) -> tuple[str, str, Any]:
    """Break-glass restore of the latest backup into a new database: the target's name,
    what the CLI said, and the `restore.failed` incident."""
    target = f"corrupt_new_{secrets.token_hex(3)}"
    ran = dep.cli(
        "restore", "run", "app", "--into", target, "--break-glass", "--reason", "t", check=False
    )
    assert ran.returncode != 0, ran.stdout
    [failed] = [i for i in dep.incidents() if i.action == "restore.failed"]
    assert failed.details["stage"] == "download"
    assert not _exists(pg, target), f"{target} was left behind"
    return target, ran.stdout + ran.stderr, failed


def test_a_flipped_byte_fails_the_download_and_the_target_created_meanwhile_is_dropped(
    dep: Deployment, pg: Any
) -> None:
    artifact = _artifact(dep)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))

    target, said, failed = _restore_into_new(dep, pg)

    assert "corrupt" in said or "SHA-256" in said, said
    assert "Nothing was restored" in said or "nothing was restored" in said, said
    state = failed.details["target_state"]
    assert state == f"{target} was created, empty, for this restore and has been removed", state


def test_a_replaced_artifact_that_unpacks_cleanly_is_refused_by_the_final_sha256_check(
    dep: Deployment, pg: Any
) -> None:
    # A whole, valid zstd frame of another archive: only the SHA-256 and size tell.
    artifact = _artifact(dep)
    other = zstandard.ZstdCompressor(write_checksum=True).compress(b"PGDMP" + b"\0" * 4096)
    artifact.write_bytes(other)

    target, said, failed = _restore_into_new(dep, pg)

    assert "is not the one that was verified" in said, said
    assert "nothing was restored" in said, said
    assert failed.details["target_state"].startswith(f"{target} was created, empty"), failed
