"""Notes of operations done outside the bot in Slack: the note's channel message, posted
once it is recorded and redrawn when it is confirmed. Only Slack I/O lives here; the
note itself is `NoteService`'s. Without Slack the note is still recorded."""

from __future__ import annotations

from backupbot.bot.slack import delivery
from backupbot.bot.slack.blocks.note import note_message
from backupbot.bot.slack.flows.channel import SlackChannel
from backupbot.commands.operation_notes import NoteService
from backupbot.storage.operation_notes import OperationNote


class NoteFlow:
    def __init__(self, notes: NoteService, slack: SlackChannel) -> None:
        self._notes = notes
        self._slack = slack

    def post(self, note: OperationNote) -> OperationNote:
        """Post the note in the channel and keep where its message is (for its button)."""
        if not self._slack.reachable:
            return note
        client, channel = self._slack.required()
        ts = delivery.post(client, channel, note_message(note))
        return self._notes.posted(note.id, channel, ts) if ts is not None else note

    def redraw(self, note: OperationNote) -> None:
        if self._slack.client is not None and note.channel and note.message_ts:
            delivery.update(self._slack.client, note.channel, note.message_ts, note_message(note))
