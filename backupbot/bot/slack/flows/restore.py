"""Restores in Slack: post the request, apply clicks, run the approved restore with its
progress in the request message and the details in its thread.

Only Slack I/O lives here; every decision is `RestoreService`'s. The same flow serves the
slash command, the buttons, the CLI (`restore request`), and the periodic sweep that
expires requests and announces break-glass restores (whose notice asks an approver for
the review, `commands/escalation_review.py`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from backupbot.bot.slack import delivery, kit
from backupbot.bot.slack.blocks import approvals as approval_blocks
from backupbot.bot.slack.blocks import restore as restore_blocks
from backupbot.bot.slack.blocks import review as review_blocks
from backupbot.bot.slack.flows.channel import SlackChannel
from backupbot.bot.slack.kit import Message
from backupbot.commands.click_origin import ClickOrigin
from backupbot.commands.escalation_review import BreakGlassReviews, ReviewResult, review_of
from backupbot.commands.restore_decisions import ClickResult, Reminder
from backupbot.commands.restore_model import RestoreProgress
from backupbot.errors import BackupbotError, SlackUnreachable
from backupbot.storage.restores import RestoreRecord

if TYPE_CHECKING:
    from backupbot.commands.restore import RestoreService

log = logging.getLogger(__name__)


class RestoreFlow:
    """Needs Slack: a restore request is approved there."""

    def __init__(
        self,
        restores: RestoreService,
        slack: SlackChannel,
        enqueue: Callable[[RestoreRecord], None],
        reviews: BreakGlassReviews | None = None,
    ) -> None:
        self._client, self.channel = slack.required()
        self._slack = slack
        self._restores = restores
        self._enqueue = enqueue
        self._reviews = reviews

    def _now(self) -> datetime:
        return self._slack.now()

    # -- posting ----------------------------------------------------------------------------

    def post_request(self, record: RestoreRecord) -> RestoreRecord:
        """Post the request message in the channel and remember where it is."""
        message = restore_blocks.restore_message(record, self._now())
        ts = self._post(self.channel, message)
        if ts is None:
            self._restores.withdraw(record.id, "the request could not be posted in Slack")
            raise SlackUnreachable(
                f"The restore request {record.id} could not be posted in the channel, so nobody "
                "can approve it; it was withdrawn. Check the bot's access to the channel."
            )
        self._restores.set_message(record.id, self.channel, ts)
        current = self._restores.get(record.id)
        if (current.status, current.approvals) != (record.status, record.approvals):
            # A click landed between the post and `set_message`: it found no message to
            # update, so show its decision now.
            self.refresh(current)
        return current

    def refresh(self, record: RestoreRecord, progress: RestoreProgress | None = None) -> None:
        if record.channel and record.message_ts:
            message = restore_blocks.restore_message(record, self._now(), progress)
            self._update(record.channel, record.message_ts, message)

    def thread_reply(self, record: RestoreRecord, message: Message) -> None:
        if record.channel and record.message_ts:
            self._post(record.channel, message, thread_ts=record.message_ts)

    # -- clicks ------------------------------------------------------------------------------

    def after_click(self, result: ClickResult) -> Message | None:
        """Show the click's effect; returns the ephemeral answer for the clicker, if any.

        An approval that completes the request queues the restore for a worker (this
        process's or a `backupbot worker`'s; `bot/runtime/job_runner.py`).
        """
        if result.refusal is not None:
            if result.expired_now:
                self.refresh(result.record)
            return restore_blocks.refused(result.refusal)
        self.refresh(result.record)
        if result.start_restore:
            try:
                self._enqueue(result.record)
            except BackupbotError as exc:
                self.refresh(self._restores.get(result.record.id))
                return kit.notice(f":warning: {exc}")
        return None

    # -- execution ---------------------------------------------------------------------------

    def run(self, record: RestoreRecord) -> RestoreRecord:
        """Claim and execute an approved restore, reporting in the request message and
        its thread. A restore another process has claimed is left to it."""
        if not self._restores.claim(record.id):
            log.info("restore %s is not waiting any more; not running it", record.id)
            return self._restores.get(record.id)
        last: dict[str, float] = {}
        lock = threading.Lock()

        def on_progress(progress: RestoreProgress) -> None:
            with lock:
                current = self._restores.get(record.id)  # where its message is, and state
                for stage, seconds in progress.timings.items():
                    if stage not in last:
                        last[stage] = seconds
                        note = restore_blocks.stage_note(stage, seconds, progress.safety_backup_id)
                        self.thread_reply(current, note)
                self.refresh(current, progress)

        final = self._restores.execute(record.id, on_progress, claimed=True)
        for stage, seconds in (final.result.get("timings") or {}).items():
            if stage not in last and final.status == "succeeded" and not final.is_provider:
                self.thread_reply(final, restore_blocks.stage_note(stage, seconds))
        self._show_result(final)
        return final

    def _show_result(self, record: RestoreRecord) -> None:
        """The outcome in the request message and the report in its thread, through the
        outbox when there is one (so both arrive after a Slack outage)."""
        results = self._slack.results
        if results is None or not (record.channel and record.message_ts):
            self.refresh(record)
            self.thread_reply(record, restore_blocks.restore_report(record))
            return
        message = restore_blocks.restore_message(record, self._now())
        results.send(f"restore:{record.id}", record.channel, message, ts=record.message_ts)
        report = restore_blocks.restore_report(record)
        results.send(
            f"restore:{record.id}:report", record.channel, report, thread_ts=record.message_ts
        )

    # -- sweeps ------------------------------------------------------------------------------

    def expire_due(self) -> list[RestoreRecord]:
        """Close requests past their expiry and take their buttons away."""
        expired = self._restores.expire_due()
        for record in expired:
            self.refresh(record)
        return expired

    def remind_due(self) -> list[Reminder]:
        """Remind the approvers in the request's thread as expiry nears."""
        reminders = self._restores.reminders_due()
        for reminder in reminders:
            self.thread_reply(reminder.record, approval_blocks.reminder(reminder))
        return reminders

    def announce_pending(self) -> list[RestoreRecord]:
        """Tell the channel about break-glass restores run while Slack was unreachable.

        Each notice is claimed (a guarded update) before it is posted, so two bot
        processes never both post it; a failed post gives the claim back.
        """
        announced = []
        for record in self._restores.unannounced():
            if not self._restores.mark_announced(record.id):
                continue  # another process has it
            ts = self._post(self.channel, self._notice(record))
            if ts is None:
                self._restores.unmark_announced(record.id)
                break  # still unreachable: try again on the next sweep
            self._restores.set_message(record.id, self.channel, ts)
            announced.append(record)
        return announced

    # -- break-glass review ------------------------------------------------------------------

    def _notice(self, record: RestoreRecord) -> Message:
        due = self._reviews.due_at(record) if self._reviews else None
        return restore_blocks.break_glass_notice(record, due)

    def review(self, restore_id: str, user: str, origin: ClickOrigin | None) -> ReviewResult:
        """Apply a Reviewed click on a break-glass notice: the notice shows who reviewed
        it and loses its button; the thread says so. The overdue alert, if one opened,
        resolves on the next alert step."""
        assert self._reviews is not None, "RestoreFlow built without break-glass reviews"
        result = self._reviews.review(restore_id, user, self._now(), origin)
        done = review_of(result.record)
        if result.refusal is None and done is not None:
            record = result.record
            if record.channel and record.message_ts:
                self._update(record.channel, record.message_ts, self._notice(record))
                self.thread_reply(record, review_blocks.reviewed_note(record, done))
        return result

    def _post(self, channel: str, message: Message, thread_ts: str | None = None) -> str | None:
        return delivery.post(self._client, channel, message, thread_ts)

    def _update(self, channel: str, ts: str, message: Message) -> bool:
        return delivery.update(self._client, channel, ts, message)
