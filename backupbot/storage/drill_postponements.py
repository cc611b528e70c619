"""Postponed scheduled drills: one row per (database, firing), inserted once (a unique
key) and started once (a guarded update)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Select, select, update
from sqlalchemy.exc import IntegrityError

from backupbot.storage.models import DrillPostponementRow
from backupbot.storage.unit_of_work import orm_session, read_session, transaction


@dataclass(frozen=True)
class Postponement:
    database: str
    firing_at: datetime  # the scheduled drill it moves
    run_at: datetime  # when the drill runs instead
    requested_by: str
    requested_at: datetime
    started_at: datetime | None = None

    @classmethod
    def from_row(cls, row: DrillPostponementRow) -> Postponement:
        return cls(
            row.database,
            row.firing_at,
            row.run_at,
            row.requested_by,
            row.requested_at,
            row.started_at,
        )


class DrillPostponements:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, p: Postponement) -> bool:
        """Record `p`; False if that firing of that database is postponed already."""
        row = DrillPostponementRow(
            database=p.database,
            firing_at=p.firing_at,
            run_at=p.run_at,
            requested_by=p.requested_by,
            requested_at=p.requested_at,
        )
        try:
            with orm_session(self._engine) as session, session.begin_nested():
                session.add(row)
        except IntegrityError:
            return False
        return True

    def get(self, database: str, firing_at: datetime) -> Postponement | None:
        stmt = select(DrillPostponementRow).where(
            DrillPostponementRow.database == database, DrillPostponementRow.firing_at == firing_at
        )
        with read_session(self._engine) as session:
            row = session.scalars(stmt).first()
            return Postponement.from_row(row) if row else None

    def active(self, now: datetime) -> list[Postponement]:
        """Postponements whose firing has come and whose new time has not."""
        stmt = select(DrillPostponementRow).where(
            DrillPostponementRow.firing_at <= now, DrillPostponementRow.run_at > now
        )
        return self._all(stmt)

    def due(self, now: datetime) -> list[Postponement]:
        """Postponed drills whose time has come and that nobody has started."""
        stmt = select(DrillPostponementRow).where(
            DrillPostponementRow.run_at <= now, DrillPostponementRow.started_at.is_(None)
        )
        return self._all(stmt)

    def start(self, p: Postponement, now: datetime) -> bool:
        """Mark `p` started: True for exactly one caller."""
        with transaction(self._engine) as conn:
            result = conn.execute(
                update(DrillPostponementRow)
                .where(
                    DrillPostponementRow.database == p.database,
                    DrillPostponementRow.firing_at == p.firing_at,
                    DrillPostponementRow.started_at.is_(None),
                )
                .values(started_at=now)
            )
        return result.rowcount == 1

    def _all(self, stmt: Select[DrillPostponementRow]) -> list[Postponement]:
        with read_session(self._engine) as session:
            return [Postponement.from_row(r) for r in session.scalars(stmt)]
