"""Where a restore unpacks its archive for pg_restore (`restore.work_dir`, default TMPDIR):
one directory per restore, named by its id, removed when the restore ends. A process
killed mid-restore cannot remove its own, so whichever process takes the restore over
removes it (on the same machine; elsewhere it is not visible): an unpacked archive is as
large as the database and must not pile up after crashes."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from backupbot.settings import RestoreSettings


def work_root(settings: RestoreSettings) -> Path:
    return settings.work_dir or Path(tempfile.gettempdir())


def new_work_dir(root: Path, restore_id: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"backupbot-{restore_id}-", dir=root))


def remove_work_dirs(root: Path, restore_id: str) -> int:
    """Remove what a stopped restore left under `root`; how many directories."""
    found = [p for p in root.glob(f"backupbot-{restore_id}-*") if p.is_dir()]
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    return len(found)


def remove_in_background(work: Path) -> threading.Thread:
    """Start removing `work` (pg_restore has finished with the archive in it) in a thread:
    freeing a file as large as the database takes a while, and the verification that runs
    meanwhile does not need it. Join the thread before the restore ends."""
    thread = threading.Thread(
        target=shutil.rmtree,
        args=(work,),
        kwargs={"ignore_errors": True},
        name=f"remove-{work.name}",
        daemon=True,
    )
    thread.start()
    return thread
