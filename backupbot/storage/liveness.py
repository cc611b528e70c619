"""How the bot tells live work from work whose process died.

Every running backup, restore and drill row names its owner process (host name, process
id and a token drawn once per process) and carries a heartbeat its owner refreshes every
`HEARTBEAT_SECONDS`. Any process may take the row over when the heartbeat is older than
`STALE_AFTER`, or at once when the owner ran on this host and that process is gone.
Takeovers are guarded by the heartbeat the taker saw, so a row whose owner beat meanwhile
is left alone.

A row waiting for a worker (stage `queued`) has no heartbeat to go stale: its owner is
the process whose in-process queue holds it (SQLite state), or `SHARED_QUEUE` when the
PostgreSQL queue holds it (no process; never dead). A waiting row no queue took yet
(its process stopped between recording and queueing it) goes by the heartbeat rule.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

HEARTBEAT_SECONDS = 10.0
STALE_AFTER = timedelta(seconds=45)

QUEUED = "queued"  # the stage of a row that waits for a worker
SHARED_QUEUE = "queue"  # the owner of a waiting row the shared (PostgreSQL) queue holds

_TOKEN = secrets.token_hex(3)


def process_identity() -> str:
    """This process, as written into the rows it owns."""
    return f"{socket.gethostname()}:{os.getpid()}:{_TOKEN}"


def abandoned(
    stage: str | None,
    owner: str | None,
    heartbeat_at: datetime | None,
    now: datetime,
    is_dead: Callable[[str | None], bool],
    stale_after: timedelta = STALE_AFTER,
) -> bool:
    """Whether a running row's process stopped, by the rules above."""
    if stage == QUEUED and owner is not None:
        return owner != SHARED_QUEUE and is_dead(owner)
    stale = heartbeat_at is None or now - heartbeat_at > stale_after
    return stale or is_dead(owner)


def owner_is_dead(owner: str | None) -> bool:
    """True only when `owner` certainly stopped: it ran on this host and its process is
    gone (or its pid is now this process, under another token). Unknown means alive."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, token = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return token != _TOKEN
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed child not yet reaped by its parent still answers kill(0)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
