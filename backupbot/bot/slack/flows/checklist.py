"""The monthly checklist in Slack: post it once per period, apply ticks and the sign-off
to the message, remind once when it lies unsigned.

Only Slack I/O lives here; every decision is `ChecklistService`'s. Posting and the
reminder are claimed in the state database before the message is sent (and the claim
given back when Slack refuses), so two bot processes or a retry never post twice. A
post Slack refuses for good (no such channel, bot not in it, token revoked) is recorded
once (`slack.delivery_failed`) and not retried every minute: housekeeping tries again
once a delivery to the channel works again, or after `PERMANENT_RETRY`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from backupbot.bot.slack import delivery
from backupbot.bot.slack.blocks import checklist as checklist_blocks
from backupbot.bot.slack.blocks import checklist_reason
from backupbot.bot.slack.charts import post_charts
from backupbot.bot.slack.flows.channel import SlackChannel
from backupbot.bot.slack.kit import Message
from backupbot.commands.checklist import ChecklistClick
from backupbot.commands.click_origin import ClickOrigin
from backupbot.commands.schedule import SCHEDULER_ACTOR
from backupbot.errors import SlackUnreachable
from backupbot.storage.checklists import ChecklistRecord

if TYPE_CHECKING:
    from backupbot.commands.checklist import ChecklistService
    from backupbot.commands.trends import ChartData
    from backupbot.storage.incidents import IncidentLog

log = logging.getLogger(__name__)

PERMANENT_RETRY = timedelta(hours=1)  # a post refused for good is tried again after this
_reported: set[tuple[str, str, str]] = set()  # (checklist id, channel, error) recorded
_reported_lock = threading.Lock()


class ChecklistFlow:
    def __init__(
        self,
        checklists: ChecklistService,
        slack: SlackChannel,
        incidents: IncidentLog,
        charts: Callable[[], Sequence[ChartData]] | None = None,
    ) -> None:
        self._charts = charts
        self._client = slack.client
        self.channel = slack.channel
        self._checklists = checklists
        self._incidents = incidents
        self._refused: dict[str, datetime] = {}  # checklist id -> when Slack refused it for good

    # -- posting ----------------------------------------------------------------------------

    def post_monthly(self, now: datetime, actor: str = SCHEDULER_ACTOR) -> ChecklistRecord | None:
        """Post this period's checklist unless it is posted already (or being posted by
        another process): the posted record, or None when there was nothing to do.

        Raises `SlackUnreachable` when Slack refused the message; the claim is given back
        and `remind_step` tries again.
        """
        record = self._checklists.prepare(now)
        if record.posted:
            return None
        return self._post(record, now, actor)

    def _post(self, record: ChecklistRecord, now: datetime, actor: str) -> ChecklistRecord | None:
        channel = self.channel
        if self._client is None or channel is None:
            raise SlackUnreachable(
                f"The {record.period} checklist cannot be posted: Slack is not set up (bot "
                "token and `slack.channel`)."
            )
        claimed = self._checklists.claim_post(record.id, channel, now)
        if claimed is None:
            return None
        try:
            ts = delivery.Notifier(self._client).post(
                channel, checklist_blocks.checklist_message(claimed)
            )
        except delivery.DeliveryError as exc:
            self._checklists.release_post(record.id)
            if exc.permanent:
                self._refused[record.id] = now
                self._record_refusal(record, channel, exc, now)
                raise SlackUnreachable(
                    f"The {record.period} checklist could not be posted in {channel}: Slack "
                    f"refuses it ({exc.error}). The bot tries again once a message reaches "
                    "the channel again, or in an hour; check `slack.channel` and the bot's "
                    "access to the channel."
                ) from None
            raise SlackUnreachable(
                f"The {record.period} checklist could not be posted in the channel "
                f"({exc.error}); the bot tries again every minute."
            ) from None
        self._refused.pop(record.id, None)
        posted = self._checklists.posted(record.id, channel, ts, now, actor)
        if (posted.ticked, posted.signed_off) != (claimed.ticked, claimed.signed_off):
            self.refresh(posted)  # ticked while it was being posted
        self._post_charts(posted, channel, ts, now)
        return posted

    def _post_charts(self, record: ChecklistRecord, channel: str, ts: str, now: datetime) -> None:
        """Each database's trend chart in the checklist's thread, best effort: a chart
        that fails is logged and recorded (`checklist.chart_failed`); the checklist stands."""
        if self._charts is None or self._client is None:
            return
        try:
            charts = list(self._charts())
        except Exception:
            log.exception("the trend charts of the %s checklist were not drawn", record.period)
            return
        for post in post_charts(self._client, channel, charts, thread_ts=ts):
            if post.posted:
                continue
            try:
                self._incidents.record(
                    at=now,
                    actor=SCHEDULER_ACTOR,
                    action="checklist.chart_failed",
                    outcome="failed",
                    database=post.database,
                    details={"period": record.period, "channel": channel, "error": post.error},
                )
            except Exception:
                log.exception("could not record the failed %s chart", post.database)

    def _record_refusal(
        self, record: ChecklistRecord, channel: str, exc: delivery.DeliveryError, now: datetime
    ) -> None:
        """A `slack.delivery_failed` record, once per checklist, channel and error."""
        with _reported_lock:
            key = (record.id, channel, exc.error)
            if key in _reported:
                return
            _reported.add(key)
        try:
            self._incidents.record(
                at=now,
                actor=SCHEDULER_ACTOR,
                action="slack.delivery_failed",
                outcome="failed",
                details={
                    "what": f"checklist {record.period}",
                    "channel": channel,
                    "error": exc.error,
                    "permanent": True,
                },
            )
        except Exception:
            log.exception("could not record that Slack refused the %s checklist", record.period)

    def _paused(self, record: ChecklistRecord, now: datetime) -> bool:
        """Whether a post of `record` that Slack refused for good should wait: until the
        channel takes a message again, or `PERMANENT_RETRY` has passed."""
        refused = self._refused.get(record.id)
        channel = self.channel
        if refused is None or channel is None:
            return False
        standing = delivery.HEALTH.problem(channel) is not None
        return standing and now - refused < PERMANENT_RETRY

    # -- clicks ------------------------------------------------------------------------------

    def refresh(self, record: ChecklistRecord) -> bool:
        if self._client is None or not (record.channel and record.message_ts):
            return False
        message = checklist_blocks.checklist_message(record)
        return delivery.update(self._client, record.channel, record.message_ts, message)

    def after_click(self, result: ChecklistClick) -> Message | None:
        """Show the click's effect in the message; the ephemeral answer for the clicker,
        if any. The message is redrawn even when nothing changed, so a clicker whose view
        was stale (or whose tick was refused) sees the stored ticks again."""
        self.refresh(result.record)
        if result.refusal is not None:
            return checklist_blocks.refused(result.refusal)
        return None

    def ask_reason(
        self, trigger_id: str, checklist_id: str, origin: ClickOrigin, look: list[str]
    ) -> bool:
        """Open the reason modal for the Sign off click whose `trigger_id` this is (Slack
        takes it for 3 seconds); False if Slack would not open it."""
        view = checklist_reason.reason_modal(checklist_id, origin.channel, origin.message_ts, look)
        if self._client is None:
            return False
        try:
            self._client.views_open(trigger_id=trigger_id, view=view)
        except SlackApiError as exc:
            log.warning("the sign-off reason modal did not open: %s", exc.response.get("error"))
            return False
        return True

    def whisper(self, channel: str, user: str, message: Message) -> None:
        """An answer only `user` sees, in `channel` (for a modal's outcome: no response_url)."""
        if self._client is not None:
            delivery.ephemeral(self._client, channel, user, message)

    # -- the periodic step ------------------------------------------------------------------

    def remind_step(self, now: datetime) -> bool:
        """One housekeeping step: post this period's checklist if an earlier post failed,
        else remind the channel once about a checklist unsigned after `remind_after_days`.
        True if it posted something."""
        unposted = self._checklists.unposted(now)
        if unposted is not None:
            if self._paused(unposted, now):
                return False
            try:
                return self._post(unposted, now, SCHEDULER_ACTOR) is not None
            except SlackUnreachable as exc:
                log.warning("%s", exc)
                return False
        record = self._checklists.due_reminder(now)
        if record is None or self._client is None or not record.channel:
            return False
        if not self._checklists.claim_reminder(record.id, now):
            return False  # another process reminded, or it was just signed off
        message = checklist_blocks.reminder_message(record, now)
        ts = delivery.post(self._client, record.channel, message)
        if ts is None:
            self._checklists.release_reminder(record.id)
            return False
        self._checklists.reminded(record, now, ts)
        return True
