"""The incident log: an append-only record of every action the bot takes or refuses.

The database refuses UPDATE and DELETE on this table (see the first migration), and the
records form a hash chain (`incident_chain`) that `verify` walks; this module only
appends and reads. Details must never contain secrets: callers pass
redacted values only.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, text

from backupbot.storage import incident_chain
from backupbot.storage.models import IncidentRow
from backupbot.storage.unit_of_work import atomic, orm_session, read_session

_CHAIN_LOCK = 0x62626963  # "bbic": advisory lock held while appending (PostgreSQL)


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


@dataclass(frozen=True)
class ChainedIncident:
    """A record with the hash-chain fields it is stored with (see `incident_chain`)."""

    incident: Incident
    prev_hash: str | None
    hash: str | None


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
        details = json.loads(json.dumps(details or {}))  # exactly what the column returns
        content = incident_chain.canonical(
            at=at,
            actor=actor,
            action=action,
            outcome=outcome,
            database=database,
            backup_id=backup_id,
            details=details,
        )
        with orm_session(self._engine) as session:
            if self._engine.dialect.name == "postgresql":
                # One appender at a time extends the chain (SQLite's write lock does this).
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
            prev = session.scalar(select(IncidentRow.hash).order_by(IncidentRow.id.desc()).limit(1))
            prev = prev or incident_chain.GENESIS
            row = IncidentRow(
                at=at,
                actor=actor,
                action=action,
                outcome=outcome,
                database=database,
                backup_id=backup_id,
                details=details,
                prev_hash=prev,
                hash=incident_chain.link(prev, content),
            )
            session.add(row)
        return _to_incident(row)

    def atomic(self) -> contextlib.AbstractContextManager[Any]:
        """A unit of work: state changes made inside commit together with the records."""
        return atomic(self._engine)

    def verify(self, batch: int = 1000) -> incident_chain.ChainCheck:
        """Walk the whole chain, oldest first; see `incident_chain.verify`."""
        return incident_chain.verify(self._chain_records(batch))

    def _chain_records(self, batch: int) -> Iterator[incident_chain.ChainRecord]:
        after = 0
        while True:
            stmt = (
                select(IncidentRow)
                .where(IncidentRow.id > after)
                .order_by(IncidentRow.id)
                .limit(batch)
            )
            with read_session(self._engine) as session:
                rows = [(r.id, r.prev_hash, r.hash, _content(r)) for r in session.scalars(stmt)]
            if not rows:
                return
            for rid, prev, digest, content in rows:
                yield incident_chain.ChainRecord(rid, prev, digest, content)
            after = rows[-1][0]

    def in_range(
        self, since: datetime | None = None, until: datetime | None = None, batch: int = 500
    ) -> Iterator[ChainedIncident]:
        """Every record with `since <= at < until` (None: unbounded), oldest (lowest id)
        first, read `batch` at a time by id so the log is never held in memory."""
        after = 0
        while True:
            stmt = select(IncidentRow).where(IncidentRow.id > after)
            if since is not None:
                stmt = stmt.where(IncidentRow.at >= since)
            if until is not None:
                stmt = stmt.where(IncidentRow.at < until)
            with read_session(self._engine) as session:
                page = [
                    ChainedIncident(_to_incident(r), r.prev_hash, r.hash)
                    for r in session.scalars(stmt.order_by(IncidentRow.id).limit(batch))
                ]
            if not page:
                return
            yield from page
            after = page[-1].incident.id

    def recent(self, limit: int = 20, database: str | None = None) -> list[Incident]:
        """The newest `limit` records, newest first."""
        stmt = select(IncidentRow).order_by(IncidentRow.id.desc()).limit(limit)
        if database:
            stmt = stmt.where(IncidentRow.database == database)
        with read_session(self._engine) as session:
            return [_to_incident(r) for r in session.scalars(stmt)]

    def recent_of(self, action: str, limit: int = 20) -> list[Incident]:
        """The newest `limit` records of `action`, newest first."""
        stmt = select(IncidentRow).where(IncidentRow.action == action)
        with read_session(self._engine) as session:
            rows = session.scalars(stmt.order_by(IncidentRow.id.desc()).limit(limit))
            return [_to_incident(r) for r in rows]

    def for_backup(self, backup_id: str) -> list[Incident]:
        stmt = select(IncidentRow).where(IncidentRow.backup_id == backup_id)
        with read_session(self._engine) as session:
            return [_to_incident(r) for r in session.scalars(stmt.order_by(IncidentRow.id))]


def _content(row: IncidentRow) -> bytes:
    return incident_chain.canonical(
        at=row.at,
        actor=row.actor,
        action=row.action,
        outcome=row.outcome,
        database=row.database,
        backup_id=row.backup_id,
        details=dict(row.details or {}),
    )


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
