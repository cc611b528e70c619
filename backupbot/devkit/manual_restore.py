"""The README's manual restore, without backupbot: `zstd -dc FILE | pg_restore -d TARGET`,
and for an encrypted backup `age -d -i key.txt FILE | zstd -dc | pg_restore -d TARGET`;
a parallel dump (`….tar.zst`) is `zstd -dc FILE | tar -x`, then `pg_restore -j 2 -d TARGET DIR`.

The demo and the tests use it to prove an artifact is good with the standard tools alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def _tool(name: str) -> str:
    """The path of the command-line tool `name`; a missing one fails with the fix."""
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"The {name} command is not installed; run scripts/install-system-deps.sh "
            f"(Debian package {name})."
        )
    return found


def restore_by_hand(artifact: Path, target_url: str, identity: Path | None = None) -> None:
    """Restore `artifact` into the (empty) database at `target_url`, decrypting it first
    with the age CLI and the identity file `identity` when given; raises
    `subprocess.CalledProcessError` if age, zstd or pg_restore fails. The password goes
    to pg_restore through its environment, never its argv."""
    parts = urlsplit(target_url)
    env = dict(os.environ)
    if parts.password is not None:
        env["PGPASSWORD"] = parts.password
        userinfo, host = parts.netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]  # still percent-encoded, as in the URL
        target_url = urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))
    with contextlib.ExitStack() as stack:
        stages: list[subprocess.Popen[bytes]] = []
        if identity is not None:
            argv = [_tool("age"), "-d", "-i", str(identity), str(artifact)]
            stages.append(stack.enter_context(subprocess.Popen(argv, stdout=subprocess.PIPE)))
        unzstd_argv = [_tool("zstd"), "-dc"] + ([] if stages else [str(artifact)])
        unzstd = subprocess.Popen(
            unzstd_argv, stdin=stages[0].stdout if stages else None, stdout=subprocess.PIPE
        )
        stages.append(stack.enter_context(unzstd))
        for stage in stages[:-1]:
            assert stage.stdout is not None
            stage.stdout.close()  # the next stage holds it now
        pg_restore = ["pg_restore", "--no-owner", "--no-acl", "--exit-on-error", "-d", target_url]
        if ".tar.zst" in artifact.name:  # untar, then restore the directory in parallel
            untarred = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            tar = [_tool("tar"), "-x", "-C", str(untarred)]
            subprocess.run(tar, stdin=unzstd.stdout, check=True, capture_output=True)
            [directory] = list(untarred.iterdir())
            pg_restore += ["-j", "2", str(directory)]
        subprocess.run(
            pg_restore,
            stdin=None if "-j" in pg_restore else unzstd.stdout,
            env=env,
            check=True,
            capture_output=True,
        )
    for stage in stages:
        if stage.returncode != 0:
            raise subprocess.CalledProcessError(stage.returncode, stage.args)
