"""Injected faults of the stand-in's Web API: rate limits, server errors, API errors and
held calls, per method, for a number of calls or a while."""

from __future__ import annotations

import time
from typing import Any

from backupbot.devkit.slack_standin.records import Fault
from backupbot.devkit.slack_standin.state import StandinState


class FaultInjection(StandinState):
    """The fault-injection part of `SlackStandin`."""

    _faults: dict[str, list[Fault]]
    _held: set[str]  # methods whose calls wait until released

    def rate_limit(
        self,
        method: str,
        times: int | None = 1,
        retry_after: int = 1,
        *,
        seconds: float | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` (None: every call) with HTTP 429 and
        `Retry-After: retry_after`; with `seconds`, only for that long. Replaces the
        method's earlier faults."""
        self._set_fault(method, Fault(429, "ratelimited", retry_after), times, seconds)

    def server_error(
        self,
        method: str,
        times: int | None = 1,
        status: int = 500,
        *,
        seconds: float | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` (None: every call) with HTTP `status`
        and `{"ok": false, "error": "internal_error"}`; with `seconds`, only for that long.
        Replaces the method's earlier faults."""
        self._set_fault(method, Fault(status, "internal_error"), times, seconds)

    def api_error(
        self,
        method: str,
        error: str,
        times: int | None = None,
        *,
        channel: str | None = None,
        seconds: float | None = None,
    ) -> None:
        """Answer calls of `method` (for `channel` only, when given) with HTTP 200 and
        `{"ok": false, "error": error}`, as Slack refuses a missing channel
        (`channel_not_found`) or a revoked token; every call unless `times` or `seconds`
        limit it. Replaces the method's earlier faults."""
        fault = Fault(
            200, error, channel=None if channel is None else self._resolve_channel(channel)
        )
        self._set_fault(method, fault, times, seconds)

    def clear_faults(self, method: str | None = None) -> None:
        """Remove the injected faults of `method` (of every method when None), holds too."""
        with self._changed:
            if method is None:
                self._faults.clear()
                self._held.clear()
            else:
                self._faults.pop(method, None)
                self._held.discard(method)
            self._changed.notify_all()

    def hold(self, method: str) -> None:
        """Keep every call of `method` waiting (recorded in `calls()` on arrival) until
        `release`: a Slack that does not answer."""
        with self._changed:
            self._held.add(method)

    def release(self, method: str | None = None) -> None:
        """Answer the held calls of `method` (of every method when None)."""
        with self._changed:
            if method is None:
                self._held.clear()
            else:
                self._held.discard(method)
            self._changed.notify_all()

    def _set_fault(
        self, method: str, fault: Fault, times: int | None, seconds: float | None
    ) -> None:
        fault.remaining = times
        fault.until = None if seconds is None else time.monotonic() + seconds
        with self._lock:
            self._faults[method] = [fault]

    def _take_fault(self, method: str, params: dict[str, Any]) -> Fault | None:
        """The fault this call of `method` gets, counting it; None to answer normally."""
        now = time.monotonic()
        channel = params.get("channel")
        for fault in self._faults.get(method, []):
            if not fault.active(now):
                continue
            if fault.channel is not None and (
                not isinstance(channel, str) or self._resolve_channel(channel) != fault.channel
            ):
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
            return fault
        return None
