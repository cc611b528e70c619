"""Escalation alerts in Slack: post new alerts, show resolutions, deliver the pings, and
apply Acknowledge clicks.

Only Slack I/O lives here; every decision is `AlertService`'s. `step(now)` is what the
scheduler calls every minute. Whatever Slack does not take stays recorded and is retried
on the next step: an alert whose message could not be posted keeps `message_ts` empty, a
resolution that could not be shown stays pending, a ping that reached nobody gives its
level back. Each post is claimed first (a guarded update), so two bot processes stepping
at once post every message once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from backupbot.bot.slack import delivery
from backupbot.bot.slack.blocks import alert as alert_blocks
from backupbot.bot.slack.flows.channel import SlackChannel
from backupbot.bot.slack.kit import Message
from backupbot.commands.click_origin import ClickOrigin
from backupbot.commands.escalation_types import AckResult, Ping, PingDelivery, Repage
from backupbot.storage.alerts import AlertRecord

if TYPE_CHECKING:
    from backupbot.commands.escalation import AlertService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepResult:
    """What one step did. `opened`/`resolved` are the evaluation's changes; the rest is
    what reached Slack; `retry` counts posts Slack did not take (tried again next step)."""

    opened: list[AlertRecord] = field(default_factory=list)
    resolved: list[AlertRecord] = field(default_factory=list)
    posted: list[AlertRecord] = field(default_factory=list)
    resolutions_posted: list[AlertRecord] = field(default_factory=list)
    pings: list[Ping] = field(default_factory=list)
    repages: list[Repage] = field(default_factory=list)
    retry: int = 0


class AlertFlow:
    """Needs Slack: alerts are posted, pinged and acknowledged there."""

    def __init__(self, alerts: AlertService, slack: SlackChannel) -> None:
        self._client, self.channel = slack.required()
        self._slack = slack
        self._alerts = alerts

    def step(self, now: datetime) -> StepResult:
        """Evaluate → post new alerts → show resolutions → re-page lapsed
        acknowledgements → deliver due pings."""
        evaluation = self._alerts.evaluate(now)
        posted, failed_posts = self.post_new(now)
        resolutions, failed_resolutions = self.post_resolutions(now)
        repages = self.repage(self._alerts.repage_due(now), now)
        pings, failed_pings = self.deliver(self._alerts.escalate(now), now)
        return StepResult(
            opened=evaluation.opened,
            resolved=evaluation.resolved,
            posted=posted,
            resolutions_posted=resolutions,
            pings=pings,
            repages=repages,
            retry=failed_posts + failed_resolutions + failed_pings,
        )

    # -- alert messages ---------------------------------------------------------------------

    def post_new(self, now: datetime) -> tuple[list[AlertRecord], int]:
        """Post every open alert not yet in Slack; stops at the first failure."""
        posted: list[AlertRecord] = []
        pending = self._alerts.unposted()
        for i, alert in enumerate(pending):
            claim = self._alerts.claim_post(alert, now)
            if claim is None:
                continue  # another process is posting it, or did
            message = self._message(claim.alert)
            ts = delivery.post(self._client, self.channel, message)
            if ts is None:
                self._alerts.post_failed(claim)
                return posted, len(pending) - i
            record = self._alerts.posted(claim, self.channel, ts)
            if record.acknowledged_by and not claim.alert.acknowledged_by:
                self.refresh(record)  # acknowledged while it was being posted
            posted.append(record)
        return posted, 0

    def post_resolutions(self, now: datetime) -> tuple[list[AlertRecord], int]:
        """Show each cleared alert's resolution: the message loses its button, the thread
        gets the resolution. An alert cleared before it was ever posted is posted once, in
        its resolved state."""
        shown: list[AlertRecord] = []
        pending = self._alerts.pending_resolutions(now)
        for i, alert in enumerate(pending):
            if not self._alerts.claim_resolution(alert):
                continue
            record = self._alerts.get(alert.id)
            if self._show_resolution(record, now):
                shown.append(self._alerts.get(alert.id))
                continue
            self._alerts.resolution_failed(record)
            return shown, len(pending) - i
        return shown, 0

    def _show_resolution(self, record: AlertRecord, now: datetime) -> bool:
        message = self._message(record)
        if record.posted:
            assert record.channel is not None and record.message_ts is not None
            if not delivery.update(self._client, record.channel, record.message_ts, message):
                return False
            self._thread(record, alert_blocks.resolution_note(record))
            return True
        claim = self._alerts.claim_post(record, now)
        if claim is None:
            return False
        ts = delivery.post(self._client, self.channel, message)
        if ts is None:
            self._alerts.post_failed(claim)
            return False
        self._alerts.posted(claim, self.channel, ts)
        return True

    def refresh(self, record: AlertRecord) -> None:
        if record.posted:
            assert record.channel is not None and record.message_ts is not None
            message = self._message(record)
            delivery.update(self._client, record.channel, record.message_ts, message)

    def _message(self, record: AlertRecord) -> Message:
        return alert_blocks.alert_message(record, self._alerts.levels, self._alerts.reack_after)

    # -- re-pages ---------------------------------------------------------------------------

    def repage(self, repages: list[Repage], now: datetime) -> list[Repage]:
        """Show each lapsed acknowledgement: the message is unacknowledged again (with its
        button), the thread says it is still failing and mentions the acknowledger and the
        current level, each of those users gets a DM. Recorded once, whatever Slack took
        (the lapse is already claimed; the levels after it escalate as usual)."""
        for repage in repages:
            alert = repage.alert
            assert alert.channel is not None and alert.message_ts is not None
            self.refresh(alert)
            thread = delivery.post(
                self._client, alert.channel, alert_blocks.repage_message(repage), alert.message_ts
            )
            dms: list[str] = []
            failures: list[str] = []
            dm = alert_blocks.repage_dm(repage, alert.channel, self._permalink(alert))
            for user in repage.users:
                (dms if self._dm(user, dm) else failures).append(user)
            result = PingDelivery(thread is not None, tuple(dms), tuple(failures))
            self._alerts.repage_delivered(repage, result, now)
        return repages

    # -- pings ------------------------------------------------------------------------------

    def deliver(self, pings: list[Ping], now: datetime) -> tuple[list[Ping], int]:
        """Ping each level: a reply in the alert's thread mentioning its users and groups,
        and a DM to each user. A ping nobody received gives its level (and the later levels
        claimed with it) back; the remaining pings wait for the next step too."""
        delivered: list[Ping] = []
        given_back: set[str] = set()
        slack_down = False
        touched: dict[str, Ping] = {}
        for ping in pings:
            alert_id = ping.alert.id
            if alert_id in given_back:
                continue  # a lower level of this alert was given back: this one follows it
            result = None if slack_down else self._ping(ping)
            if result is None or not result.delivered:
                slack_down = True
                self._alerts.ping_undelivered(ping)
                given_back.add(alert_id)
                continue
            self._alerts.ping_delivered(ping, result, now)
            delivered.append(ping)
            touched[alert_id] = ping
        for ping in touched.values():
            self.refresh(self._alerts.get(ping.alert.id))  # ticks the fired levels
        return delivered, len(given_back)

    def _ping(self, ping: Ping) -> PingDelivery:
        alert = ping.alert
        assert alert.channel is not None and alert.message_ts is not None
        thread = delivery.post(
            self._client, alert.channel, alert_blocks.ping_message(ping), alert.message_ts
        )
        dms: list[str] = []
        failures: list[str] = []
        if ping.users:
            link = self._permalink(alert)
            message = alert_blocks.ping_dm(ping, alert.channel, link)
            for user in ping.users:
                (dms if self._dm(user, message) else failures).append(user)
        return PingDelivery(thread is not None, tuple(dms), tuple(failures))

    def _dm(self, user: str, message: Message) -> bool:
        try:
            channel = str(self._client.conversations_open(users=user)["channel"]["id"])
        except SlackApiError as exc:
            log.error("could not open a DM with %s: %s", user, exc.response.get("error"))
            return False
        except OSError as exc:
            log.error("Slack is unreachable: %s", exc)
            return False
        return delivery.post(self._client, channel, message) is not None

    def _permalink(self, alert: AlertRecord) -> str | None:
        if not alert.channel or not alert.message_ts:
            return None  # never posted: no message to link to
        try:
            resp = self._client.chat_getPermalink(
                channel=alert.channel, message_ts=alert.message_ts
            )
            return str(resp["permalink"])
        except (SlackApiError, OSError, KeyError):
            return None

    # -- clicks -----------------------------------------------------------------------------

    def acknowledge(self, alert_id: str, user: str, origin: ClickOrigin | None = None) -> AckResult:
        """Apply an Acknowledge click by `user` (the signed payload's user) made on the
        message at `origin`: the message shows who and when and loses its button; the
        thread says the pings stopped."""
        result = self._alerts.acknowledge(alert_id, user, self._slack.now(), origin)
        if result.acknowledged:
            self.refresh(result.record)
            self._thread(
                result.record, alert_blocks.ack_note(result.record, self._alerts.reack_after)
            )
        return result

    def _thread(self, record: AlertRecord, message: Message) -> None:
        if record.channel and record.message_ts:
            delivery.post(self._client, record.channel, message, thread_ts=record.message_ts)
