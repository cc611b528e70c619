"""Background work after Slack's 3-second acknowledgement, in two lanes.

- The interactive lane answers people: slash-command replies, button effects, restore
  requests. It never waits behind long work.
- The long lane runs hours-long work in this process: the in-process job queue's
  backups, restores, drills and retention runs (`storage/job_queue.py`).

Both remember what they run, so `serve` can stop them on shutdown and tests can wait for
a job's effect instead of sleeping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

log = logging.getLogger(__name__)


class BackgroundJobs:
    def __init__(self, max_workers: int = 8, long_workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="answer")
        self._long = ThreadPoolExecutor(max_workers=long_workers, thread_name_prefix="job")
        self._pending: set[Future[Any]] = set()
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run `fn(*args)` on the interactive lane."""
        return self._track(self._pool.submit(self._guarded, fn, *args))

    def submit_long(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run `fn(*args)` on the long lane."""
        return self._track(self._long.submit(self._guarded, fn, *args))

    def _track(self, future: Future[Any]) -> Future[Any]:
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    @staticmethod
    def _guarded(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            log.exception("background job %s failed", getattr(fn, "__name__", fn))
            raise

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every submitted job (and any job they submit) is done.

        Returns False if `timeout` seconds passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                pending = set(self._pending)
            if not pending:
                return True
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            _done, not_done = wait(pending, timeout=left)
            if not_done:
                return False

    def shutdown(self, wait: bool = True) -> None:
        """No new jobs; with `wait`, return once the running ones are done. Jobs not yet
        started are dropped (queued backups stay queued in their rows)."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        self._long.shutdown(wait=wait, cancel_futures=not wait)
