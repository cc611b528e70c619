"""One channel message kept current from its own thread, so Slack never slows the work.

A `MessageSender` posts its first version, then sends what `offer` hands it: at most one
`chat.update` every `interval` seconds, the newest version winning (versions offered in
between are dropped), never while Slack's `Retry-After` runs. `offer` only stores the
message and returns at once: no Slack I/O on the caller's thread. `finish` hands over
the final version, which replaces any pending one and is always sent after every earlier
update (one thread sends, in order), retried on transient failures with backoff for at
most `final_window` seconds; `finish` returns whether the channel shows it.

The sender's `Notifier` should wrap a client without its own retries
(`delivery.without_retries`): a 429 is paced here, not slept through inside a call.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable

from backupbot.bot.slack.delivery import DeliveryError, Notifier
from backupbot.bot.slack.kit import Message

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 3.0  # seconds between two progress updates of one message
FINAL_WINDOW = 60.0  # how long the final version is retried on transient failures
BACKOFF_START = 1.0  # first wait after a transient failure without Retry-After ...
BACKOFF_MAX = 10.0  # ... doubling up to this

_active: weakref.WeakSet[MessageSender] = weakref.WeakSet()  # senders not yet done


def give_up_all() -> None:
    """Shutting down: every sender stops retrying (pending progress is dropped; a final
    version gets one attempt), so no job waits on Slack past a stop."""
    for sender in list(_active):
        sender.give_up()


class MessageSender:
    """Keeps one message in `channel` current; see the module docstring."""

    def __init__(
        self,
        notifier: Notifier,
        channel: str,
        first: Message,
        *,
        interval: float = PROGRESS_INTERVAL,
        final_window: float = FINAL_WINDOW,
        name: str = "slack-message",
    ) -> None:
        self._notifier = notifier
        self._channel = channel
        self._first = first
        self._interval = interval
        self._final_window = final_window
        self._clock = time.monotonic
        self._cond = threading.Condition()
        self._pending: Message | None = None
        self._final: Message | None = None
        self._final_deadline = 0.0
        self._abandoned = False
        self._stopping = False  # give_up(): no more progress, one attempt at the final
        self._ts: str | None = None
        self._delivered = False
        self._done = threading.Event()
        self._not_before = 0.0  # Slack's Retry-After: no call before this
        self._next_progress = 0.0  # the progress interval: no progress update before this
        self._dead: DeliveryError | None = None  # a permanent failure: progress stops
        self.error: DeliveryError | None = None  # the last failure, if any
        self.sent = 0  # successful calls (post and updates)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    # -- the caller's side ------------------------------------------------------------

    def start(self) -> MessageSender:
        _active.add(self)
        self._thread.start()
        return self

    def give_up(self) -> None:
        """Stop retrying: no more progress; the final version (given now or later) gets
        one attempt, and `finish` returns whether it landed."""
        with self._cond:
            self._stopping = True
            self._pending = None
            self._final_deadline = min(self._final_deadline, self._clock())
            self._cond.notify_all()

    @property
    def ts(self) -> str | None:
        """The message's ts once posted."""
        with self._cond:
            return self._ts

    def offer(self, message: Message) -> None:
        """Make `message` the next progress version; returns at once."""
        with self._cond:
            if self._final is None and not self._abandoned and not self._stopping:
                self._pending = message
                self._cond.notify_all()

    def finish(self, message: Message) -> bool:
        """Send the final version (after any update in flight); True once the channel
        shows it, False when Slack refused it for good or `final_window` ran out."""
        with self._cond:
            if self._final is None and not self._abandoned:
                self._final = message
                self._pending = None
                window = 0.0 if self._stopping else self._final_window
                self._final_deadline = self._clock() + window
                self._cond.notify_all()
        # The thread gives up by the deadline; one more call's timeout on top.
        self._done.wait(self._final_window + 60.0)
        with self._cond:
            return self._delivered

    def abandon(self) -> None:
        """Stop without a final version (the work raised); returns at once."""
        with self._cond:
            self._abandoned = True
            self._cond.notify_all()

    # -- the sender thread ------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._post_first()
            self._send_progress()
            self._send_final()
        except Exception:  # never let a bug here end silently with finish() waiting
            log.exception("the message sender for %s failed", self._channel)
        finally:
            self._done.set()
            _active.discard(self)

    def _gone(self) -> bool:
        """No more progress: the work raised, or the bot is stopping. Called with the lock."""
        return self._abandoned or self._stopping

    def _wait(self, until: float, wake: Callable[[], bool]) -> None:
        """Wait until `until` (monotonic) or until `wake()` holds; called with the lock."""
        while not wake():
            left = until - self._clock()
            if left <= 0:
                return
            self._cond.wait(left)

    def _failed(self, exc: DeliveryError, what: str) -> None:
        self.error = exc
        if exc.permanent:
            self._dead = exc
            return
        wait = exc.retry_after if exc.retry_after is not None else 0.0
        with self._cond:
            self._not_before = max(self._not_before, self._clock() + wait)
        log.info(
            "Slack did not take a %s in %s (%s); trying again later", what, self._channel, exc.error
        )

    def _post_first(self) -> None:
        backoff = BACKOFF_START
        while True:
            with self._cond:
                self._wait(self._not_before, lambda: self._final is not None or self._gone())
                if self._final is not None or self._gone():
                    return  # the final version is posted as the message itself
            try:
                ts = self._notifier.post(self._channel, self._first)
            except DeliveryError as exc:
                self._failed(exc, "post")
                if exc.permanent:
                    return
                with self._cond:
                    self._not_before = max(self._not_before, self._clock() + backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            with self._cond:
                self._ts = ts
                self.sent += 1
                self._next_progress = self._clock() + self._interval
            return

    def _send_progress(self) -> None:
        if self._dead is not None:
            return
        while True:
            with self._cond:
                if self._ts is None or self._gone() or self._final is not None:
                    return
                # Sleep until there is something to send and sending is allowed.
                while self._pending is None and self._final is None and not self._gone():
                    self._cond.wait()
                if self._final is not None or self._gone():
                    return
                allowed = max(self._not_before, self._next_progress)
                self._wait(allowed, lambda: self._final is not None or self._gone())
                if self._final is not None or self._gone():
                    return
                message, self._pending = self._pending, None
                ts = self._ts
            assert message is not None
            try:
                self._notifier.update(self._channel, ts, message)
            except DeliveryError as exc:
                self._failed(exc, "progress update")
                if exc.permanent:
                    return
                with self._cond:
                    if self._pending is None:
                        self._pending = message  # still the newest: send it next time
                    self._next_progress = self._clock() + self._interval
                continue
            with self._cond:
                self.sent += 1
                self._next_progress = self._clock() + self._interval

    def _send_final(self) -> None:
        with self._cond:
            # Stopping ends progress before the work has ended: wait for its final version.
            while self._final is None and not self._abandoned:
                self._cond.wait()
            if self._abandoned or self._final is None:
                return
            final, ts = self._final, self._ts
        if self._dead is not None and ts is None:
            return  # the channel refused the message for good: the caller tells its user
        backoff = BACKOFF_START
        attempts = 0
        while True:
            with self._cond:
                if not self._stopping:
                    wake = lambda: self._abandoned or self._stopping  # noqa: E731
                    self._wait(min(self._not_before, self._final_deadline), wake)
                late = self._clock() > self._final_deadline
                given_up = self._abandoned or (attempts > 0 and (self._stopping or late))
            attempts += 1
            if given_up:
                log.error(
                    "gave up showing a result in %s (%s)",
                    self._channel,
                    self.error.error if self.error else "stopping",
                )
                return
            try:
                if ts is None:
                    ts = self._notifier.post(self._channel, final)
                    with self._cond:
                        self._ts = ts
                else:
                    self._notifier.update(self._channel, ts, final)
            except DeliveryError as exc:
                self._failed(exc, "result")
                if exc.permanent:
                    return
                with self._cond:
                    if exc.retry_after is None:
                        self._not_before = max(self._not_before, self._clock() + backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            with self._cond:
                self.sent += 1
                self._delivered = True
            return
