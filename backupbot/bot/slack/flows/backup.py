"""A backup in the channel: one message posted at the start and updated in place with
progress and the result. Used by `/backup now`, the scheduler and the CLI. The result
also goes to the outbox (`outbox_delivery.py`), so it arrives even after an outage.

The message is sent by a `MessageSender` on its own thread: the backup's progress
listener only hands it the newest version, so a slow or rate-limited Slack never slows
the dump, and the result is always sent last (retried for a bounded time).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from backupbot.bot.slack import delivery
from backupbot.bot.slack.blocks import backup as backup_blocks
from backupbot.bot.slack.flows.channel import SlackChannel
from backupbot.bot.slack.kit import Message
from backupbot.bot.slack.progress_sender import FINAL_WINDOW, MessageSender
from backupbot.commands.backup_progress import Progress
from backupbot.storage.catalog import BackupRecord

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from backupbot.commands.backup import BackupService
    from backupbot.storage.catalog import BackupCatalog
    from backupbot.storage.incidents import IncidentLog

log = logging.getLogger(__name__)

RESULT_WINDOW = 10.0  # seconds the sender retries a result itself before the outbox does


class BackupFlow:
    def __init__(
        self,
        backups: BackupService,
        catalog: BackupCatalog,
        incidents: IncidentLog,
        slack: SlackChannel,
    ) -> None:
        self._backups = backups
        self._catalog = catalog
        self._incidents = incidents
        self._slack = slack

    def run(self, record: BackupRecord) -> tuple[BackupRecord, Message, bool]:
        """Run a started backup, keeping its channel message current. Returns the final
        record, the result message, and whether the channel shows it (False: Slack is not
        reachable or not configured, so the caller should tell its user another way)."""
        client, channel = self._slack.client, self._slack.channel
        if client is None or not channel:
            final = self._backups.run(record, _ignore)
            return final, backup_blocks.backup_result(final), False
        return self._run_shown(record, client, channel)

    def _run_shown(
        self, record: BackupRecord, client: WebClient, channel: str
    ) -> tuple[BackupRecord, Message, bool]:
        notifier = delivery.Notifier(delivery.without_retries(client))
        results = self._slack.results
        sender = MessageSender(
            notifier,
            channel,
            backup_blocks.backup_started(record),
            name=f"slack-backup-{record.id}",
            # With the outbox holding the result, the sender's own retries can be short.
            final_window=RESULT_WINDOW if results else FINAL_WINDOW,
        ).start()

        remembered: list[str] = []

        def remember_message() -> None:
            """Store where the message is, so a process that takes the backup over after a
            crash can correct it (`Services.take_over_abandoned`)."""
            if remembered or sender.ts is None:
                return
            remembered.append(sender.ts)
            try:
                self._catalog.set_message(record.id, channel, sender.ts)
            except Exception:
                log.warning("could not record the message of backup %s", record.id)

        def on_progress(progress: Progress) -> None:
            sender.offer(backup_blocks.backup_progress(record, progress))
            remember_message()

        try:
            final = self._backups.run(record, on_progress)
        except BaseException:
            sender.abandon()
            raise
        result = backup_blocks.backup_result(final)
        # The result is written to the outbox before it is sent: if Slack does not take
        # it in time, or this process stops, `deliver_due` sends it later.
        held = (
            results.hold(f"backup:{record.id}", channel, result, sender.ts, RESULT_WINDOW + 60)
            if results
            else None
        )
        shown = sender.finish(result)
        if results and held:
            results.settle(held, shown, sender.ts, sender.error, record=False)
        if not shown:
            self._record_undelivered(final, channel, sender.error)
        return final, result, shown

    def _record_undelivered(
        self,
        final: BackupRecord,
        channel: str,
        error: delivery.DeliveryError | None,
    ) -> None:
        """Record, once per channel and error, that the channel could not be told."""
        if error is None or not error.permanent or not error.first_seen:
            return
        try:
            self._incidents.record(
                at=self._slack.now(),
                actor=final.actor,
                action="slack.delivery_failed",
                outcome="failed",
                database=final.database,
                backup_id=final.id,
                details={"channel": channel, "error": error.error, "permanent": True},
            )
        except Exception:
            log.exception("could not record that Slack refused backup %s's message", final.id)


def _ignore(progress: Progress) -> None:
    return None
