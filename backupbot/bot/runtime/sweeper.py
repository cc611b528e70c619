"""A background thread inside `serve` that runs single-step housekeeping every so often:
expiring restore requests, announcing break-glass restores once Slack is reachable.

Each step is a plain call that does one round of work and returns; tests call the steps
directly with a controlled clock instead of waiting for this thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)


class Sweeper(threading.Thread):
    def __init__(self, steps: Sequence[Callable[[], Any]], interval: float = 30.0) -> None:
        super().__init__(name="sweeper", daemon=True)
        self._steps = list(steps)
        self._interval = interval
        self._stop = threading.Event()

    def run_once(self) -> None:
        for step in self._steps:
            try:
                step()
            except Exception:
                log.exception("housekeeping step %s failed", getattr(step, "__name__", step))

    def run(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_once()

    def stop(self) -> None:
        self._stop.set()
