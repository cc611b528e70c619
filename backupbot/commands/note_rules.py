"""What a `/backup note` may say: its kinds and its length. Kept apart from the note
service (and its state tables) so the command registry, read by the CLI's argument
parser at every start, stays light."""

from __future__ import annotations

from backupbot.errors import UsageError
from backupbot.phrases import Command, Name, say

KINDS = ("restore", "staging-restore", "other")
DEFAULT_KIND = "other"
MAX_TEXT = 2000  # characters of a note


def check_note(database: str, kind: str, text: str) -> None:
    """Raise a `UsageError` for an unknown kind, a missing text or one too long."""
    if kind not in KINDS:
        raise UsageError(
            say(
                "{kind} is not a kind of note; say {kinds} (or leave it out: {default}).",
                kind=Name(kind),
                kinds=", ".join(KINDS),
                default=DEFAULT_KIND,
            ),
            "note",
        )
    if not text.strip():
        raise UsageError(
            say(
                "Say what was done, where and by whom after the database, e.g. {example}.",
                example=Command(
                    "note", database, "restore", "Restored from the provider dashboard to 14:00"
                ),
            ),
            "note",
        )
    if len(text) > MAX_TEXT:
        raise UsageError(
            f"The note is {len(text)} characters; keep it to {MAX_TEXT} "
            "(link to a ticket or a document for the rest).",
            "note",
        )
