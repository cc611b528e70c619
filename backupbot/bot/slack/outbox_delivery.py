"""Results that must reach the channel, through the outbox (`storage/outbox.py`).

`send` writes the message, then tries it once at once; `hold` writes it for a sender
that tries first itself (a backup's `MessageSender`), and `settle` records how that
went. Whatever is left is sent by `deliver_due`, a housekeeping step of `serve` and of
every worker: transient failures (429 with its Retry-After, 5xx, timeouts) are retried
with backoff until delivered or `GIVE_UP_AFTER`; a permanent one (`channel_not_found`,
`invalid_auth`, ...) stops at once, is logged once (`delivery.HEALTH`, shown by
`/healthz`) and recorded as `slack.delivery_failed`.

An update whose message was never posted is posted instead, as an update of the message
an earlier version of the same key posted when there is one, so a result is never posted
twice by the outbox.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from backupbot.bot.slack.delivery import DeliveryError, Notifier, without_retries
from backupbot.bot.slack.kit import Message
from backupbot.clock import Clock
from backupbot.commands.restore_model import BOT_ACTOR
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.outbox import GIVE_UP_AFTER, Outbox, OutboxItem, backoff

if TYPE_CHECKING:
    from slack_sdk import WebClient

log = logging.getLogger(__name__)


def to_json(message: Message) -> dict[str, Any]:
    return {"text": message.text, "blocks": message.blocks, "notify": list(message.notify)}


def from_json(data: dict[str, Any]) -> Message:
    return Message(
        str(data.get("text", "")), list(data.get("blocks") or []), tuple(data.get("notify") or ())
    )


class OutboxDelivery:
    def __init__(
        self, outbox: Outbox, client: WebClient, incidents: IncidentLog, clock: Clock
    ) -> None:
        self._outbox = outbox
        self._notifier = Notifier(without_retries(client))
        self._incidents = incidents
        self._clock = clock

    def send(
        self,
        key: str,
        channel: str,
        message: Message,
        *,
        ts: str | None = None,
        thread_ts: str | None = None,
    ) -> str | None:
        """Write `message` (an update of `ts`, or a new post), then try it now; the ts it
        shows in when delivered now, None when it is left to `deliver_due`."""
        item = self._outbox.add(
            key, channel, to_json(message), self._now(), ts=ts, thread_ts=thread_ts
        )
        return self._attempt(item)

    def hold(
        self, key: str, channel: str, message: Message, ts: str | None, seconds: float
    ) -> OutboxItem:
        """Write `message` for a sender that tries it itself for up to `seconds`; nobody
        else sends it before then (`deliver_due` takes over if that process stops)."""
        now = self._now()
        return self._outbox.add(
            key, channel, to_json(message), now, ts=ts, not_before=now + timedelta(seconds=seconds)
        )

    def settle(
        self,
        item: OutboxItem,
        shown: bool,
        ts: str | None,
        error: DeliveryError | None,
        *,
        record: bool = True,
    ) -> None:
        """How the sender's own attempts at a held item went (`record=False`: the caller
        records a permanent refusal itself)."""
        now = self._now()
        if shown:
            self._outbox.delivered(item.id, ts, now)
        elif error is not None and error.permanent:
            self._give_up(item, error.error, permanent=True, record=record and error.first_seen)
        else:
            reason = error.error if error else "not delivered in time"
            retry_after = error.retry_after if error else None
            self._outbox.retry_later(item.id, reason, now + backoff(1, retry_after), ts=ts)

    def deliver_due(self) -> int:
        """Send what is due (a housekeeping step); how many were delivered."""
        delivered = 0
        for item in self._outbox.due(self._now()):
            if self._outbox.claim(item, self._now()) and self._attempt(item, claimed=True):
                delivered += 1
        return delivered

    def _attempt(self, item: OutboxItem, *, claimed: bool = False) -> str | None:
        if not claimed and not self._outbox.claim(item, self._now()):
            return None
        ts = item.ts or (None if item.thread_ts else self._outbox.delivered_ts(item.key))
        message = from_json(item.message)
        try:
            if ts is None:
                ts = self._notifier.post(item.channel, message, item.thread_ts)
            else:
                self._notifier.update(item.channel, ts, message)
        except DeliveryError as exc:
            self._failed(item, exc, ts)
            return None
        self._outbox.delivered(item.id, ts, self._now())
        if item.attempts:
            log.info(
                "delivered %s to %s after %d attempt(s)", item.key, item.channel, item.attempts + 1
            )
        return ts

    def _failed(self, item: OutboxItem, exc: DeliveryError, ts: str | None) -> None:
        now = self._now()
        if exc.permanent:
            self._give_up(item, exc.error, permanent=True, record=exc.first_seen)
        elif now - item.created_at >= GIVE_UP_AFTER:
            self._give_up(item, f"{exc.error}; gave up after {GIVE_UP_AFTER}", permanent=False)
        else:
            at = now + backoff(item.attempts + 1, exc.retry_after)
            self._outbox.retry_later(item.id, exc.error, at, ts=ts)
            log.info("Slack did not take %s (%s); trying again at %s", item.key, exc.error, at)

    def _give_up(
        self, item: OutboxItem, error: str, *, permanent: bool, record: bool = True
    ) -> None:
        """Stop sending `item`; recorded as `slack.delivery_failed` (a permanent failure
        once per channel and error, as `delivery.HEALTH` logs it)."""
        now = self._now()
        with self._incidents.atomic():
            self._outbox.failed(item.id, error, now)
            if not record:
                return
            self._incidents.record(
                at=now,
                actor=BOT_ACTOR,
                action="slack.delivery_failed",
                outcome="failed",
                details={
                    "channel": item.channel,
                    "error": error,
                    "permanent": permanent,
                    "message": item.key,
                },
            )

    def _now(self) -> datetime:
        return self._clock.now()
