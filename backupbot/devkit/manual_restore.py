"""The README's manual restore, without backupbot: `zstd -dc FILE | pg_restore -d TARGET`.

The demo and the tests use it to prove an artifact is good with the standard tools alone.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def restore_by_hand(artifact: Path, target_url: str) -> None:
    """Restore `artifact` into the (empty) database at `target_url`; raises
    `subprocess.CalledProcessError` if zstd or pg_restore fails."""
    with subprocess.Popen(["zstd", "-dc", str(artifact)], stdout=subprocess.PIPE) as unzstd:
        subprocess.run(
            ["pg_restore", "--no-owner", "--no-acl", "--exit-on-error", "-d", target_url],
            stdin=unzstd.stdout,
            check=True,
            capture_output=True,
        )
    if unzstd.returncode != 0:
        raise subprocess.CalledProcessError(unzstd.returncode, ["zstd", "-dc", str(artifact)])
