"""Finding PostgreSQL's client programs: the pg_dump/pg_restore pair matching a server."""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from backupbot.errors import PgToolMissing
from backupbot.storage.pgconn import child_env

_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_SEARCH_GLOBS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
)


@dataclass(frozen=True)
class PgBinaries:
    """A matched pair of pg_dump and pg_restore of one major version."""

    bin_dir: Path
    major: int
    version: str

    @property
    def pg_dump(self) -> str:
        return str(self.bin_dir / "pg_dump")

    @property
    def pg_restore(self) -> str:
        return str(self.bin_dir / "pg_restore")


@functools.cache
def _tool_version(path: str) -> tuple[int, str] | None:
    try:
        out = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
            env=child_env(),
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = _VERSION_RE.search(out)
    if not m:
        return None
    return int(m.group(1)), out.strip().split("(PostgreSQL)")[-1].strip()


def candidate_bin_dirs(extra: Iterable[Path] = ()) -> list[Path]:
    dirs: list[Path] = [Path(p) for p in extra]
    for pattern in _SEARCH_GLOBS:
        dirs.extend(Path(p) for p in sorted(glob.glob(pattern)))
    on_path = shutil.which("pg_dump")
    if on_path:
        dirs.append(Path(os.path.realpath(on_path)).parent)
    seen: set[Path] = set()
    unique = []
    for d in dirs:
        if d not in seen and (d / "pg_dump").exists() and (d / "pg_restore").exists():
            seen.add(d)
            unique.append(d)
    return unique


def find_binaries(server_major: int, extra_dirs: Iterable[Path] = ()) -> PgBinaries:
    """The pg_dump/pg_restore pair whose major is the smallest one >= the server's.

    The same major as the server is preferred so that the archive restores with the
    pg_restore a team most likely has; a newer one is used when that is all there is.
    """
    found: list[PgBinaries] = []
    for d in candidate_bin_dirs(extra_dirs):
        info = _tool_version(str(d / "pg_dump"))
        if info is not None:
            found.append(PgBinaries(bin_dir=d, major=info[0], version=info[1]))
    usable = sorted((b for b in found if b.major >= server_major), key=lambda b: b.major)
    if usable:
        return usable[0]
    have = ", ".join(sorted({str(b.major) for b in found})) or "none"
    raise PgToolMissing(
        f"The server runs PostgreSQL {server_major}, and pg_dump must be version "
        f"{server_major} or newer (found: {have}). Install postgresql-client-{server_major} "
        "(Debian/Ubuntu, from apt.postgresql.org) or set backup.pg_bin_dirs in the config."
    )
