"""Block Kit for notes of operations done outside the bot (`/backup note`): the channel
message of a note, with the Confirm button of a staging restore until a second person
confirms it, and the author's answer. The note's text is the author's: escaped, shown
as a quote."""

from __future__ import annotations

from backupbot.bot.slack.kit import (
    Block,
    Message,
    channel_link,
    clip,
    code,
    context,
    esc,
    mention,
    notice,
    section,
)
from backupbot.commands import humanize
from backupbot.commands.operation_notes import KIND_WORDS
from backupbot.storage.operation_notes import OperationNote

CONFIRM_ACTION = "note_confirm"
CONFIRM_BLOCK = "note_confirm"
MAX_SHOWN = 2800  # characters of the escaped text in the message's section


def _quoted(text: str) -> str:
    """The author's text as a block quote: escaped first, so only the bot's `>` quotes."""
    return "\n".join(f">{line}" for line in clip(esc(text), MAX_SHOWN).splitlines() or [""])


def _confirmation(note: OperationNote) -> list[Block]:
    if note.confirmed_by:
        return [
            context(
                f":white_check_mark: Confirmed by {mention(note.confirmed_by)} at "
                f"{humanize.utc(note.confirmed_at)}: it counts for the checklist's "
                "test-restore item."
            )
        ]
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Confirm"},
        "action_id": CONFIRM_ACTION,
        "value": note.id,
    }
    return [
        {"type": "actions", "block_id": CONFIRM_BLOCK, "elements": [button]},
        context(
            ":hourglass_flowing_sand: Not yet confirmed: a second person (not the author) "
            "who checked the staging restore presses Confirm; only then does it count for "
            "the checklist's test-restore item."
        ),
    ]


def note_message(note: OperationNote) -> Message:
    """The channel message of a note, in its current state."""
    words = KIND_WORDS.get(note.kind, note.kind)
    blocks: list[Block] = [
        section(f":memo: *{esc(words)}* · {code(note.database)}\n{_quoted(note.text)}"),
        context(
            f"note {code(note.id)} · written by {mention(note.author)} at "
            f"{humanize.utc(note.created_at)} · kept in the incident log"
        ),
    ]
    if note.confirmable:
        blocks += _confirmation(note)
    confirmed = f" (confirmed by {note.confirmed_by})" if note.confirmed_by else ""
    text = f"{words} on {note.database}, noted by {note.author}{confirmed}: {clip(note.text, 300)}"
    return Message(text, blocks)


def note_ack(note: OperationNote) -> Message:
    """The author's answer to `/backup note`."""
    where = (
        f"posted in {channel_link(note.channel)}" if note.channel else "not posted (Slack failed)"
    )
    confirm = " A second person confirms it there with *Confirm*." if note.confirmable else ""
    return notice(
        f":memo: Noted {code(note.id)} for {code(note.database)} in the incident log; "
        f"{where}.{confirm}"
    )
