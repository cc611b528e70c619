"""Operations done outside the bot, written into the incident log: `/backup note app
restore Restored from the Neon dashboard to 14:00` (a restore done elsewhere),
`staging-restore` (a restore test done in staging by hand) or `other`.

A note is stored and recorded (`note.recorded`, with its author and text) in one
transaction, then posted in the channel. A staging-restore note carries a Confirm button:
a second person (not the author) confirms it once, by a guarded update, only from the
note's own message; that is recorded `note.confirmed`, a refused click
`note.confirm_refused` with a code. Only a confirmed staging-restore note counts for the
checklist's test-restore item (`checklist_items/drill.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backupbot.clock import Clock
from backupbot.commands.click_origin import ClickOrigin, mismatch, refusal_facts
from backupbot.commands.note_rules import DEFAULT_KIND, KINDS, MAX_TEXT, check_note
from backupbot.phrases import Actor, Name, Phrase, say
from backupbot.storage.incidents import Incident, IncidentLog
from backupbot.storage.operation_notes import STAGING_RESTORE, OperationNote, OperationNotes

KIND_WORDS = {
    "restore": "Restore done outside the bot",
    STAGING_RESTORE: "Staging restore test",
    "other": "Operation done outside the bot",
}
LOG_TEXT = 160  # characters of a note's text in a log line
assert STAGING_RESTORE in KINDS  # the kind the checklist counts is one users can give

__all__ = ["DEFAULT_KIND", "KINDS", "MAX_TEXT", "NoteService", "check_note"]


@dataclass(frozen=True)
class NoteConfirmation:
    """What a Confirm click did: the note as it now stands, and why not if refused."""

    note: OperationNote
    refusal: Phrase | None = None


class NoteService:
    def __init__(self, notes: OperationNotes, incidents: IncidentLog, clock: Clock) -> None:
        self._notes = notes
        self._incidents = incidents
        self._clock = clock

    def record(
        self, database: str, kind: str, text: str, author: str, via: str | None = None
    ) -> OperationNote:
        """Store the note and its `note.recorded` record together. `via`: who typed it,
        when not the author (`backupbot note --as U…` run by `cli:alice`)."""
        check_note(database, kind, text)
        now = self._clock.now()
        with self._incidents.atomic():
            note = self._notes.add(database, kind, text.strip(), author, now)
            self._record(note, author, "note.recorded", "ok", text=note.text, via=via)
        return note

    def posted(self, note_id: str, channel: str, ts: str) -> OperationNote:
        self._notes.set_message(note_id, channel, ts)
        return self._notes.get(note_id)

    def get(self, note_id: str) -> OperationNote:
        return self._notes.get(note_id)

    def confirm(
        self, note_id: str, user: str, origin: ClickOrigin | None = None
    ) -> NoteConfirmation:
        """Record `user`'s confirmation of note `note_id` (raises `NotFound`)."""
        note = self._notes.get(note_id)
        what = say("note {id}", id=Name(note.id))
        wrong = mismatch(origin, note.channel, note.message_ts, what)
        if origin is not None and wrong is not None:
            return self._refuse(note, user, wrong, refusal_facts(origin, wrong, "confirm"))
        refusal = _refusal(note, user)
        if refusal is not None:
            return self._refuse(note, user, *refusal)
        with self._incidents.atomic():
            if not self._notes.confirm(note.id, user, self._clock.now()):
                current = self._notes.get(note.id)
                again = _refusal(current, user) or (_busy(), "note.busy")
                return self._refuse(current, user, *again)
            note = self._notes.get(note.id)
            self._record(note, user, "note.confirmed", "ok", author=note.author)
        return NoteConfirmation(note)

    def _refuse(
        self, note: OperationNote, user: str, refusal: Phrase, code: str | dict[str, str]
    ) -> NoteConfirmation:
        """Record the refused click (`code`, or the facts of a click from elsewhere)."""
        facts = code if isinstance(code, dict) else {"code": code, "reason": str(refusal)}
        self._record(note, user, "note.confirm_refused", "refused", **facts)
        return NoteConfirmation(note, refusal)

    def _record(
        self, note: OperationNote, actor: str, action: str, outcome: str, **facts: Any
    ) -> None:
        details = {"note_id": note.id, "kind": note.kind, **facts}
        self._incidents.record(
            at=self._clock.now(),
            actor=actor,
            action=action,
            outcome=outcome,
            database=note.database,
            details={k: v for k, v in details.items() if v is not None},
        )


def _refusal(note: OperationNote, user: str) -> tuple[Phrase, str] | None:
    """Why `user` may not confirm `note`, and the refusal's code; None if they may."""
    if not note.confirmable:
        return say("Only a staging restore test is confirmed; nothing changed."), "note.kind"
    if note.confirmed_by is not None:
        who = Actor(note.confirmed_by)
        done = say("{who} already confirmed this note; nothing changed.", who=who)
        return done, "note.already_confirmed"
    if note.author == user:
        return (
            say(
                "You wrote this note, so someone else confirms it: a second person checks "
                "every restore test."
            ),
            "note.own",
        )
    return None


def _busy() -> Phrase:
    return say("The note changed meanwhile; press Confirm again.")


def note_detail(incident: Incident) -> str | None:
    """What a log line says about a note record (plain text; front ends escape it), or
    None for any other record."""
    d = incident.details
    if not incident.action.startswith("note.") or "note_id" not in d:
        return None
    if incident.action == "note.recorded":
        text = "".join(c for c in " ".join(str(d.get("text", "")).split()) if c.isprintable())
        clipped = text if len(text) <= LOG_TEXT else text[: LOG_TEXT - 1] + "…"
        return f"{d.get('kind')}: {clipped}"
    if incident.action == "note.confirmed":
        return f"{d.get('kind')} note {d['note_id']} by {d.get('author', '?')}"
    return str(d.get("reason") or "") or None
