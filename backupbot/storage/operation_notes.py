"""Operations done outside the bot, as people noted them (`/backup note`): a restore
from a provider's dashboard, a manual pg_restore, a restore test done in staging by hand.
One row per note; its message is set once posted, and it is confirmed once, by a guarded
update."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update

from backupbot.errors import NotFound
from backupbot.storage.models import OperationNoteRow
from backupbot.storage.unit_of_work import orm_session, read_session, transaction

STAGING_RESTORE = "staging-restore"


@dataclass(frozen=True)
class OperationNote:
    id: str
    database: str
    kind: str  # restore | staging-restore | other
    text: str  # as the author wrote it: plain, never markup
    author: str
    created_at: datetime
    confirmed_by: str | None = None
    confirmed_at: datetime | None = None
    channel: str | None = None
    message_ts: str | None = None

    @classmethod
    def from_row(cls, row: OperationNoteRow) -> OperationNote:
        return cls(**{f: getattr(row, f) for f in cls.__dataclass_fields__})

    @property
    def confirmable(self) -> bool:
        """Whether a second person confirms this note (a staging restore test)."""
        return self.kind == STAGING_RESTORE

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "database": self.database,
            "kind": self.kind,
            "text": self.text,
            "author": self.author,
            "created_at": self.created_at.isoformat(),
            "confirmed_by": self.confirmed_by,
            "confirmed_at": self.confirmed_at.isoformat() if self.confirmed_at else None,
            "channel": self.channel,
            "message_ts": self.message_ts,
        }


def new_note_id() -> str:
    return "n" + secrets.token_hex(4)


class OperationNotes:
    """The `operation_notes` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, database: str, kind: str, text: str, author: str, now: datetime) -> OperationNote:
        row = OperationNoteRow(
            id=new_note_id(), database=database, kind=kind, text=text, author=author, created_at=now
        )
        with orm_session(self._engine) as session:
            session.add(row)
        return OperationNote.from_row(row)

    def get(self, note_id: str) -> OperationNote:
        with read_session(self._engine) as session:
            row = session.get(OperationNoteRow, note_id)
            if row is None:
                raise NotFound(f"There is no note with id {note_id[:40]!r}.")
            return OperationNote.from_row(row)

    def set_message(self, note_id: str, channel: str, ts: str) -> bool:
        return self._guarded(
            note_id, {"channel": channel, "message_ts": ts}, OperationNoteRow.message_ts.is_(None)
        )

    def confirm(self, note_id: str, user: str, now: datetime) -> bool:
        """Record `user`'s confirmation of a staging restore: True for exactly one
        confirmer, never the author."""
        return self._guarded(
            note_id,
            {"confirmed_by": user, "confirmed_at": now},
            OperationNoteRow.kind == STAGING_RESTORE,
            OperationNoteRow.confirmed_by.is_(None),
            OperationNoteRow.author != user,
        )

    def staging_restores(self, since: datetime) -> list[OperationNote]:
        """Staging-restore notes written since `since`, oldest first (checklist evidence)."""
        stmt = (
            select(OperationNoteRow)
            .where(
                OperationNoteRow.kind == STAGING_RESTORE,
                OperationNoteRow.created_at >= since,
            )
            .order_by(OperationNoteRow.created_at)
        )
        with read_session(self._engine) as session:
            return [OperationNote.from_row(r) for r in session.scalars(stmt)]

    def _guarded(self, note_id: str, values: dict[str, Any], *conditions: Any) -> bool:
        with transaction(self._engine) as conn:
            result = conn.execute(
                update(OperationNoteRow)
                .where(OperationNoteRow.id == note_id, *conditions)
                .values(**values)
            )
        return result.rowcount == 1
