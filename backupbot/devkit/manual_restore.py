"""The README's manual restore, without backupbot: `zstd -dc FILE | pg_restore -d TARGET`.

The demo and the tests use it to prove an artifact is good with the standard tools alone.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def restore_by_hand(artifact: Path, target_url: str) -> None:
    """Restore `artifact` into the (empty) database at `target_url`; raises
    `subprocess.CalledProcessError` if zstd or pg_restore fails. The password goes to
    pg_restore through its environment, never its argv."""
    parts = urlsplit(target_url)
    env = dict(os.environ)
    if parts.password is not None:
        env["PGPASSWORD"] = parts.password
        userinfo, host = parts.netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]  # still percent-encoded, as in the URL
        target_url = urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))
    with subprocess.Popen(["zstd", "-dc", str(artifact)], stdout=subprocess.PIPE) as unzstd:
        subprocess.run(
            ["pg_restore", "--no-owner", "--no-acl", "--exit-on-error", "-d", target_url],
            stdin=unzstd.stdout,
            env=env,
            check=True,
            capture_output=True,
        )
    if unzstd.returncode != 0:
        raise subprocess.CalledProcessError(unzstd.returncode, ["zstd", "-dc", str(artifact)])
