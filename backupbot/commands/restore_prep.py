"""Getting a restore's target ready while the artifact downloads and unpacks.

None of it touches anything of the user's: the target is inspected (does it exist, what
does it hold), the pg_restore matching its server is found, and a target that does not
exist is created, empty, for this restore. `RestoreRunner` waits for it after the
download: a created target is marked in `RunState.created`, so a failed download or check
drops it again (`restore_outcome._target_state`) and the restore leaves nothing behind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from backupbot.commands.restore_outcome import RunState
from backupbot.storage.pg_binaries import PgBinaries, find_binaries
from backupbot.storage.pgadmin import TargetFacts, create_database, inspect_target, server_major
from backupbot.storage.pgconn import ConnInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedTarget:
    facts: TargetFacts  # as found, before this restore created it
    binaries: PgBinaries
    create_seconds: float | None  # None: it existed, nothing was created


class TargetPrep:
    """Inspects the target, finds pg_restore and creates a missing target in a thread."""

    def __init__(
        self, target: ConnInfo, pg_bin_dirs: Sequence[Path], run: RunState, name: str
    ) -> None:
        """`run.created` is set as soon as the target exists, so a clean-up drops it."""
        self._target = target
        self._pg_bin_dirs = list(pg_bin_dirs)
        self._run_state = run
        self._result: PreparedTarget | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"target-{name}", daemon=True)

    def start(self) -> TargetPrep:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            facts = inspect_target(self._target)
            binaries = find_binaries(server_major(self._target), self._pg_bin_dirs)
            seconds = None
            if not facts.exists:
                t = time.monotonic()
                create_database(self._target)  # an error: not ours, never dropped
                self._run_state.created = True
                seconds = time.monotonic() - t
            self._result = PreparedTarget(facts, binaries, seconds)
        except BaseException as exc:
            self._error = exc

    def wait(self) -> None:
        """Wait for the thread, even when interrupted (Ctrl-C in the CLI): the clean-up
        must know whether the target was created before it decides what to drop."""
        try:
            self._thread.join()
        except BaseException:
            self._thread.join()
            raise

    def result(self) -> PreparedTarget:
        """The prepared target, or the error preparing it raised."""
        self.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result
