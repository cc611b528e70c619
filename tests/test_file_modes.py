"""The local store's files are 0600 and its directories 0700 whatever the umask, the
temporary `.partial` file included; a state SQLite file the bot creates is 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from backupbot.storage.local_store import LocalStore
from backupbot.storage.state import create_state_engine, migrate


def _mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_partial_and_final_files_are_private_and_older_directories_are_tightened(
    tmp_path: Path, open_umask: None
) -> None:
    root = tmp_path / "backups"
    store = LocalStore(root)
    writer = store.open_writer("app/2026/a.dump.zst")
    writer.write(b"data")
    partial = next((root / "app" / "2026").glob(".a.dump.zst.partial-*"))
    assert _mode(partial) == "0o600"
    writer.commit()
    assert _mode(root / "app" / "2026" / "a.dump.zst") == "0o600"
    assert [_mode(p) for p in (root, root / "app", root / "app" / "2026")] == ["0o700"] * 3

    (root / "old").mkdir(mode=0o755)  # a directory an earlier version left world-readable
    store.put_bytes("old/b.manifest.json", b"{}")
    assert _mode(root / "old") == "0o700"
    assert _mode(root / "old" / "b.manifest.json") == "0o600"
    store.check()
    assert sorted(store.list_keys()) == ["app/2026/a.dump.zst", "old/b.manifest.json"]


def test_an_existing_store_root_is_left_as_its_owner_made_it(
    tmp_path: Path, open_umask: None
) -> None:
    root = tmp_path / "mounted"
    root.mkdir(mode=0o750)
    LocalStore(root).put_bytes("app/a.manifest.json", b"{}")
    assert _mode(root) == "0o750"
    assert _mode(root / "app") == "0o700"


def test_the_state_sqlite_file_the_bot_creates_is_private(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "state.db"
    engine = create_state_engine(f"sqlite:///{path}")
    try:
        migrate(engine)
    finally:
        engine.dispose()
    assert _mode(path) == "0o600"
    for companion in (tmp_path / "state.db-wal", tmp_path / "state.db-shm"):
        if companion.exists():
            assert _mode(companion) == "0o600"

    kept = tmp_path / "kept.db"
    kept.touch(mode=0o640)  # one the operator made is not changed
    create_state_engine(f"sqlite:///{kept}").dispose()
    assert _mode(kept) == "0o640"
