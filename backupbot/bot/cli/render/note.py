"""`backupbot note`: the note recorded, as plain text and JSON."""

from __future__ import annotations

from typing import Any

from backupbot.commands import humanize
from backupbot.storage.operation_notes import OperationNote


def recorded_line(note: OperationNote, channel_told: bool | None) -> str:
    """What the author is told; `channel_told` None: Slack is not configured."""
    where = {None: "", True: "; posted in the channel", False: "; not posted (Slack failed)"}
    confirm = (
        " A second person confirms it with Confirm on its Slack message."
        if note.confirmable and channel_told
        else ""
    )
    return (
        f"Noted {note.id} ({note.kind}) for {note.database} by {note.author} at "
        f"{humanize.utc(note.created_at)} in the incident log{where[channel_told]}.{confirm}"
    )


def note_json(note: OperationNote, channel_told: bool | None) -> dict[str, Any]:
    return {**note.as_json(), "posted": channel_told}
