"""What a running backup reports while it runs: its progress (stage and bytes, to the
catalog and a listener, throttled) and its heartbeat (the owner is alive)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from backupbot.clock import Clock
from backupbot.storage.catalog import BackupCatalog, BackupRecord
from backupbot.storage.liveness import HEARTBEAT_SECONDS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """What a running backup reports: the stage and how many bytes it has handled."""

    backup_id: str
    database: str
    stage: str  # "snapshot" | "dumping" | "verifying"
    bytes_done: int


ProgressListener = Callable[[Progress], None]


class Pulse:
    """While a backup runs, refresh its heartbeat every `HEARTBEAT_SECONDS`: the owner is
    alive. A failed write (the state database restarting) is logged and retried at the
    next beat; the backup goes on."""

    def __init__(self, catalog: BackupCatalog, backup_id: str, clock: Clock) -> None:
        self._catalog = catalog
        self._id = backup_id
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pulse-{backup_id}", daemon=True)

    def __enter__(self) -> Pulse:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self._catalog.pulse([self._id], self._clock.now())
            except Exception:
                log.warning("could not record the heartbeat of backup %s", self._id)


class ProgressReporter:
    """Throttles progress: the recorded stage and bytes and the listener fire at most every
    `interval` seconds of process time, plus once at every stage change."""

    def __init__(
        self,
        catalog: BackupCatalog,
        record: BackupRecord,
        listener: ProgressListener,
        interval: float,
    ) -> None:
        self._catalog = catalog
        self._record = record
        self._listener = listener
        self._interval = interval
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def stage(self, stage: str, done: int) -> None:
        self._emit(stage, done)

    def tick(self, stage: str, done: int) -> None:
        if time.monotonic() - self._last >= self._interval:
            self._emit(stage, done)

    def _emit(self, stage: str, done: int) -> None:
        with self._lock:
            self._last = time.monotonic()
        try:
            self._catalog.progress(self._record.id, stage, done)
        except Exception:  # the state database is away: the backup goes on
            log.warning("could not record the progress of backup %s", self._record.id)
        try:
            self._listener(Progress(self._record.id, self._record.database, stage, done))
        except Exception:
            log.exception("progress listener failed; the backup goes on")
