"""Stopping running jobs, so a shutdown stops them all: the callbacks that stop one
backup (kill pg_dump, cancel the snapshot session's query) and the running backups'
stops; the kill switches of the running pg_restores."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)


class Stops:
    """What stops one running backup: each callback runs once, when it is interrupted (at
    once, if it is added after that)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.interrupted = False

    def add(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if not self.interrupted:
                self._callbacks.append(callback)
                return
        callback()

    def interrupt(self) -> None:
        with self._lock:
            self.interrupted = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("stopping a backup step failed")


class Interrupts:
    """The running backups' `Stops`, so a shutdown can stop them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, Stops] = {}
        self.stopping = False

    @contextlib.contextmanager
    def scope(self, backup_id: str) -> Iterator[Stops]:
        stops = Stops()
        with self._lock:
            self._running[backup_id] = stops
            stopping = self.stopping
        if stopping:
            stops.interrupt()
        try:
            yield stops
        finally:
            with self._lock:
                self._running.pop(backup_id, None)

    def interrupt_all(self) -> None:
        with self._lock:
            self.stopping = True
            running = list(self._running.values())
        for stops in running:
            stops.interrupt()


class KillSwitches:
    """The kill switches of the running pg_restores, so a shutdown can stop them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kills: dict[str, Callable[[], None]] = {}
        self.stopping = False

    @contextlib.contextmanager
    def running(self, restore_id: str, kill: Callable[[], None]) -> Iterator[None]:
        with self._lock:
            self._kills[restore_id] = kill
            stopping = self.stopping
        if stopping:
            kill()
        try:
            yield
        finally:
            with self._lock:
                self._kills.pop(restore_id, None)

    def interrupt_all(self) -> None:
        with self._lock:
            self.stopping = True
            kills = list(self._kills.values())
        for kill in kills:
            try:
                kill()
            except Exception:
                log.exception("stopping a pg_restore failed")
