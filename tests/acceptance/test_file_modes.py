"""Backups are private whatever the umask: a real `/backup now` through the serve process,
started with umask 000, leaves the artifact and manifest 0600 in 0700 directories, and the
SQLite state file the bot created 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import Deployment
from tests.acceptance.test_flows import backup_now


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask_deployment(pg: Any, tmp_path: Path) -> Iterator[Deployment]:
    """`backupbot serve` started with umask 000 (it inherits the starting process's)."""
    url, _counts = source_database(pg)
    with SlackStandin() as standin:
        dep = fresh_deployment(
            ("http", "sqlite"), pg, standin, tmp_path / "deploy", databases={"app": url}
        )
        previous = os.umask(0)
        try:
            dep.start()
        finally:
            os.umask(previous)
        yield dep
        dep.close()


def test_a_backup_is_written_0600_in_0700_directories_whatever_the_umask(
    open_umask_deployment: Deployment,
) -> None:
    dep = open_umask_deployment
    message = backup_now(dep)
    assert "succeeded" in message.text, message.text

    files = sorted(p for p in dep.store_dir.rglob("*") if p.is_file())
    dirs = [dep.store_dir, *sorted(p for p in dep.store_dir.rglob("*") if p.is_dir())]
    assert any(p.name.endswith(".manifest.json") for p in files), files
    assert any(p.name.endswith(".dump.zst") for p in files), files
    assert not [p for p in files if ".partial-" in p.name]
    assert {p.name: oct(_mode(p)) for p in files} == {p.name: "0o600" for p in files}
    assert {str(p): oct(_mode(p)) for p in dirs} == {str(p): "0o700" for p in dirs}

    state = dep.workdir / "backupbot.db"
    assert oct(_mode(state)) == "0o600"
    for companion in (state.with_name("backupbot.db-wal"), state.with_name("backupbot.db-shm")):
        if companion.exists():  # SQLite gives them the database file's mode
            assert oct(_mode(companion)) == "0o600", companion
