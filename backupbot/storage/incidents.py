"""The incident log: an append-only record of every action the bot takes or refuses.

The database refuses UPDATE and DELETE on this table (see the first migration); this
module only appends and reads. Details must never contain secrets: callers pass
redacted values only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backupbot.storage.models import IncidentRow


@dataclass(frozen=True)
class Incident:
    id: int
    at: datetime
    actor: str
    database: str | None
    action: str
    outcome: str
    backup_id: str | None
    details: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


class IncidentLog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(
        self,
        *,
        at: datetime,
        actor: str,
        action: str,
        outcome: str,
        database: str | None = None,
        backup_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Incident:
        row = IncidentRow(
            at=at,
            actor=actor,
            action=action,
            outcome=outcome,
            database=database,
            backup_id=backup_id,
            details=details or {},
        )
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            session.add(row)
        return _to_incident(row)

    def recent(self, limit: int = 20, database: str | None = None) -> list[Incident]:
        """The newest `limit` records, newest first."""
        stmt = select(IncidentRow).order_by(IncidentRow.id.desc()).limit(limit)
        if database:
            stmt = stmt.where(IncidentRow.database == database)
        with Session(self._engine) as session:
            return [_to_incident(r) for r in session.scalars(stmt)]

    def for_backup(self, backup_id: str) -> list[Incident]:
        stmt = select(IncidentRow).where(IncidentRow.backup_id == backup_id)
        with Session(self._engine) as session:
            return [_to_incident(r) for r in session.scalars(stmt.order_by(IncidentRow.id))]


def _to_incident(row: IncidentRow) -> Incident:
    return Incident(
        id=row.id,
        at=row.at,
        actor=row.actor,
        database=row.database,
        action=row.action,
        outcome=row.outcome,
        backup_id=row.backup_id,
        details=dict(row.details or {}),
    )
