"""A backup in the channel: one message posted at the start and updated in place with
progress and the result. Used by `/backup now`, the scheduler and the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backupbot.bot import blocks, slack_io
from backupbot.bot.blocks import Message
from backupbot.commands.backup import Progress
from backupbot.storage.catalog import BackupRecord

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from backupbot.bot.composition import Services


def run_and_post(
    services: Services, client: WebClient | None, channel: str | None, record: BackupRecord
) -> tuple[BackupRecord, Message, bool]:
    """Run a started backup, keeping its channel message current. Returns the final
    record, the result message, and whether the channel shows it (False: Slack is not
    reachable or not configured, so the caller should tell its user another way)."""
    ts = (
        slack_io.post(client, channel, blocks.backup_started(record))
        if client and channel
        else None
    )

    def on_progress(progress: Progress) -> None:
        if ts and client and channel:
            slack_io.update(client, channel, ts, blocks.backup_progress(record, progress))

    final = services.backups.run(record, on_progress)
    result = blocks.backup_result(final)
    shown = bool(ts and client and channel and slack_io.update(client, channel, ts, result))
    return final, result, shown
