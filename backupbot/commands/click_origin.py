"""Where a click came from, and whether it counts.

A button's value (or block id) names the restore request, checklist or alert it acts on,
and anyone who can send a signed click chooses it. So a click counts only when it came
from the very message the bot posted for that thing: the channel and message ts of the
click (from the signed payload) must be those stored with it. Any other click is refused
with code `MISMATCH`, recorded, and changes nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from backupbot.phrases import Phrase, say

MISMATCH = "click.mismatch"
MESSAGE_WAIT_SECONDS = 10.0  # how long a click waits for its message to be stored


class Posted(Protocol):
    """A record the bot posted a message for (a restore request, checklist, alert)."""

    @property
    def channel(self) -> str | None: ...

    @property
    def message_ts(self) -> str | None: ...


R = TypeVar("R", bound=Posted)


@dataclass(frozen=True)
class ClickOrigin:
    """The channel and message ts a click came from, as the signed payload says."""

    channel: str
    message_ts: str

    @classmethod
    def of(cls, body: dict[str, Any]) -> ClickOrigin:
        """From a `block_actions` payload: its container, else its channel and message."""
        container = body.get("container") or {}
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
        ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
        return cls(str(channel or ""), str(ts or ""))

    def facts(self) -> dict[str, str]:
        """For the refusal's record (cut short: the payload chose them)."""
        return {"clicked_channel": self.channel[:40], "clicked_ts": self.message_ts[:40]}


def once_posted(
    read: Callable[[], R], origin: ClickOrigin | None, timeout: float = MESSAGE_WAIT_SECONDS
) -> R:
    """The record `read` returns, once it says where its message is: a click can arrive
    between the bot's post and its note of the message's ts. Only for a click from a
    message (`origin`); after `timeout` the record as it is (and the click is refused)."""
    record = read()
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while origin is not None and not (record.channel and record.message_ts):
        if time.monotonic() >= deadline:
            break
        pause.wait(0.1)
        record = read()
    return record


def mismatch(
    origin: ClickOrigin | None, channel: str | None, message_ts: str | None, what: Phrase
) -> Phrase | None:
    """None if the click came from the message stored for `what` (or came from no
    message at all: `origin` None, the bot's own calls); else the clicker's answer."""
    if origin is None:
        return None
    if not (channel and message_ts):
        return say(
            "The message of {what} is not in place yet, so this click changed nothing; "
            "press the button again.",
            what=what,
        )
    if (origin.channel, origin.message_ts) != (channel, message_ts):
        return say(
            "This button is not on the message the bot posted for {what}, so the click "
            "changed nothing. Use the buttons on that message.",
            what=what,
        )
    return None


def refusal_facts(origin: ClickOrigin, answer: Phrase, clicked: str) -> dict[str, str]:
    """What the record of a refused click keeps: the code, what was clicked, the answer
    and where the click came from."""
    return {"code": MISMATCH, "clicked": clicked, "reason": str(answer), **origin.facts()}
