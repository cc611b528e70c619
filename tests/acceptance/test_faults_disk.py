"""The local store's disk fills up during a backup, for real: `storage.local.path` is a
2 MB tmpfs and the backup is bigger.

The backup fails with a plain "disk is full" message and a `backup.failed` incident,
leaves no hidden `.partial` file and no artifact, and the bot keeps serving: once there is
room (the tmpfs grown), the next backup succeeds and restores by hand.

Mounting needs root (the tests run as root, here and in CI); without it the test fails
with the reason, it is not skipped.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backupbot.devkit.manual_restore import restore_by_hand
from backupbot.devkit.sample_data import database_fingerprint
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import Deployment
from tests.acceptance.s3_world import add_incompressible_rows
from tests.acceptance.test_flows import _backup_id, _text, backup_now

DISK = "2m"
BIGGER = "64m"
BLOB_MB = 4  # stored ~4 MB: twice the disk


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(
            f"`mount {' '.join(args)}` failed ({result.stderr.strip() or result.returncode}). "
            "The disk-full test mounts a small tmpfs as the backup directory and needs root "
            "(run the tests as root, as CI does, or in a container with CAP_SYS_ADMIN).",
            pytrace=False,
        )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted after the test."""
    if os.geteuid() != 0:
        pytest.fail(
            "The disk-full test mounts a 2 MB tmpfs as the backup directory, which needs "
            "root: run the tests as root (as CI does).",
            pytrace=False,
        )
    where = tmp_path / "deploy" / "backups"
    where.mkdir(parents=True)
    _mount("-t", "tmpfs", "-o", f"size={DISK},mode=0700", "tmpfs", str(where))
    yield where
    subprocess.run(["umount", "--lazy", str(where)], check=False)


@pytest.fixture
def on_small_disk(pg: Any, small_disk: Path) -> Iterator[Deployment]:
    """`serve` (HTTP, SQLite state) with storage.local.path on the small disk."""
    url, _counts = source_database(pg, "diskfull")
    add_incompressible_rows(url, BLOB_MB)
    with SlackStandin() as standin:
        dep = fresh_deployment(
            ("http", "sqlite"), pg, standin, small_disk.parent, databases={"app": url}
        )
        assert dep.store_dir == small_disk
        dep.start()
        yield dep
        dep.close()


def every_file(root: Path) -> list[str]:
    """Every file under `root`, hidden ones included."""
    return sorted(
        os.path.relpath(os.path.join(top, name), root)
        for top, _dirs, files in os.walk(root)
        for name in files
    )


def test_a_full_backup_disk_fails_the_backup_cleanly_and_the_next_one_succeeds(
    on_small_disk: Deployment, small_disk: Path, pg: Any, tmp_path: Path
) -> None:
    dep = on_small_disk
    message = backup_now(dep)
    backup_id = _backup_id(message.text)
    shown = _text(message)
    assert message.text.startswith("Backup of app failed"), shown
    assert "succeeded" not in shown
    assert "disk is full" in message.text and "free space" in message.text, message.text
    assert str(small_disk) in message.text  # says which disk
    failed = dep.wait_incident(lambda i: i.action == "backup.failed" and i.backup_id == backup_id)
    assert "disk is full" in failed.details["error"]
    assert every_file(small_disk) == []  # no .partial, no artifact, no manifest

    # more room (as an operator would give it): the bot is still serving
    _mount("-o", f"remount,size={BIGGER}", str(small_disk))
    message = backup_now(dep)
    assert message.text.startswith("Backup of app succeeded"), _text(message)
    good = _backup_id(message.text)
    dep.wait_incident(lambda i: i.action == "backup.succeeded" and i.backup_id == good)
    files = every_file(small_disk)
    assert [f.rsplit("-", 1)[-1] for f in files] == [f"{good}.dump.zst", f"{good}.manifest.json"]
    target = f"diskfull_restored_{good}"
    target_url = pg.create_database(target)
    try:
        restore_by_hand(small_disk / files[0], target_url)
        assert database_fingerprint(target_url) == database_fingerprint(
            dep.exported["APP_DATABASE_URL"]
        )
    finally:
        pg.drop_database(target)
