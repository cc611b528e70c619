"""Escalation alerts: one row each, changed only by guarded updates.

`open_key` ("condition:database") is unique while an alert is open, so two evaluations or
two processes can never open the same alert twice: the loser's insert fails and it learns
the alert exists. Every later change names the state it expects and reports whether
exactly one row changed:

- escalation claims levels with a compare-and-set on `levels_fired`;
- the first Acknowledge click wins (`acknowledged_by IS NULL`); an acknowledgement that
  timed out is cleared only while it is still the one seen (`lapse`);
- the alert message is claimed before it is posted (`message_ts` holds a short-lived
  claim token until the real ts is known; a claim older than `CLAIM_TTL` is abandoned);
- resolving goes open → resolving (the condition cleared, `open_key` freed) → resolved
  (the resolution is shown in Slack), so a resolution Slack could not show is retried.

This module also reads the backup facts `BackupConditions` judges (the catalog and the
`backup.failed` incidents), so the commands layer never touches SQL.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from backupbot.errors import NotFound
from backupbot.phrases import Phrase, as_phrase, dumps, loads
from backupbot.storage.models import AlertRow, BackupRow, IncidentRow
from backupbot.storage.unit_of_work import orm_session, read_session, transaction

OPEN, RESOLVING, RESOLVED = "open", "resolving", "resolved"
CLAIM_PREFIX = "posting:"
CLAIM_TTL = timedelta(minutes=10)  # a post claim older than this belongs to a dead process


def open_key(condition: str, database: str | None) -> str:
    """The uniqueness key of an open alert; `*` (never a database name) for global ones."""
    return f"{condition}:{database or '*'}"


def new_alert_id() -> str:
    return "a" + secrets.token_hex(4)


def _claim_token(now: datetime) -> str:
    return f"{CLAIM_PREFIX}{int(now.timestamp())}:{secrets.token_hex(4)}"


def _is_claim(message_ts: str | None) -> bool:
    return bool(message_ts) and str(message_ts).startswith(CLAIM_PREFIX)


def _claim_fresh(message_ts: str, now: datetime) -> bool:
    try:
        claimed_at = int(message_ts[len(CLAIM_PREFIX) :].split(":", 1)[0])
    except ValueError:
        return False
    return now.timestamp() - claimed_at < CLAIM_TTL.total_seconds()


@dataclass(frozen=True)
class AlertRecord:
    """An alert as the rest of the bot sees it. `message_ts` is None until the alert
    message is really in Slack (a claim in progress does not count)."""

    id: str
    condition: str
    database: str | None
    status: str
    summary: str  # plain text; `summary_phrase` is what front ends render
    details: dict[str, Any]
    opened_at: datetime
    levels_fired: int
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    resolution: str | None
    channel: str | None
    message_ts: str | None
    summary_phrase: Phrase = field(default_factory=Phrase)  # else from the plain text

    def __post_init__(self) -> None:
        if not self.summary_phrase:
            object.__setattr__(self, "summary_phrase", as_phrase(self.summary))

    @classmethod
    def from_row(cls, row: AlertRow) -> AlertRecord:
        values = {f: getattr(row, f) for f in cls.__dataclass_fields__ if f != "summary_phrase"}
        values["summary_phrase"] = loads(row.summary)
        values["summary"] = str(values["summary_phrase"])
        values["details"] = dict(row.details or {})
        if _is_claim(row.message_ts):
            values["message_ts"] = None
        return cls(**values)

    @property
    def is_open(self) -> bool:
        return self.status == OPEN

    @property
    def posted(self) -> bool:
        return self.channel is not None and self.message_ts is not None


@dataclass(frozen=True)
class PostClaim:
    """The right to post one alert's message: `token` is in `message_ts` until then."""

    alert: AlertRecord
    token: str


class AlertStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- opening and closing ----------------------------------------------------------------

    def open(
        self,
        condition: str,
        database: str | None,
        summary: Phrase | str,
        details: dict[str, Any],
        now: datetime,
    ) -> AlertRecord | None:
        """Insert an open alert, or None when one is already open for condition+database."""
        row = AlertRow(
            id=new_alert_id(),
            condition=condition,
            database=database,
            open_key=open_key(condition, database),
            status=OPEN,
            summary=dumps(summary),
            details=details,
            opened_at=now,
            levels_fired=0,
        )
        try:
            with orm_session(self._engine) as session, session.begin_nested():
                session.add(row)
        except IntegrityError:
            return None
        return AlertRecord.from_row(row)

    def clear(self, alert_id: str, resolution: str, now: datetime) -> bool:
        """The condition is gone: open → resolving, freeing the key. True for one caller."""
        return self._guarded(
            alert_id,
            {"status": RESOLVING, "open_key": None, "resolved_at": now, "resolution": resolution},
            AlertRow.status == OPEN,
        )

    def claim_resolution(self, alert_id: str) -> bool:
        """Claim showing the resolution in Slack (resolving → resolved)."""
        return self._guarded(alert_id, {"status": RESOLVED}, AlertRow.status == RESOLVING)

    def release_resolution(self, alert_id: str) -> None:
        """Slack could not show it: back to resolving, for the next step."""
        self._guarded(alert_id, {"status": RESOLVING}, AlertRow.status == RESOLVED)

    # -- acknowledgement and escalation -----------------------------------------------------

    def acknowledge(self, alert_id: str, user: str, now: datetime) -> bool:
        """First click wins; only an open, unacknowledged alert can be acknowledged."""
        return self._guarded(
            alert_id,
            {"acknowledged_by": user, "acknowledged_at": now},
            AlertRow.status == OPEN,
            AlertRow.acknowledged_by.is_(None),
        )

    def lapse(self, alert_id: str, by: str, at: datetime, details: dict[str, Any]) -> bool:
        """The acknowledgement by `by` at `at` timed out: clear it and store `details`,
        while the alert is open and that acknowledgement is still the one it has. True
        for exactly one caller."""
        return self._guarded(
            alert_id,
            {"acknowledged_by": None, "acknowledged_at": None, "details": details},
            AlertRow.status == OPEN,
            AlertRow.acknowledged_by == by,
            AlertRow.acknowledged_at == at,
        )

    def claim_levels(self, alert_id: str, seen: int, upto: int) -> bool:
        """Compare-and-set `levels_fired` from `seen` to `upto` while the alert is open and
        unacknowledged: the one caller that gets True pings those levels."""
        return self._guarded(
            alert_id,
            {"levels_fired": upto},
            AlertRow.levels_fired == seen,
            AlertRow.status == OPEN,
            AlertRow.acknowledged_by.is_(None),
        )

    def release_levels(self, alert_id: str, claimed: int, back_to: int) -> bool:
        """Give back levels that could not be delivered, if nobody moved on since."""
        return self._guarded(alert_id, {"levels_fired": back_to}, AlertRow.levels_fired == claimed)

    # -- the alert message ------------------------------------------------------------------

    def claim_post(self, alert: AlertRecord, now: datetime) -> PostClaim | None:
        """Claim posting the message of an alert not yet in Slack, or None if another
        process holds a fresh claim or it is posted already."""
        with read_session(self._engine) as session:
            row = session.get(AlertRow, alert.id)
            if row is None:
                return None
            seen = row.message_ts
        if seen is not None and not (_is_claim(seen) and not _claim_fresh(seen, now)):
            return None
        token = _claim_token(now)
        cond = AlertRow.message_ts.is_(None) if seen is None else AlertRow.message_ts == seen
        if not self._guarded(alert.id, {"message_ts": token}, cond):
            return None
        return PostClaim(self.get(alert.id), token)

    def set_posted(self, claim: PostClaim, channel: str, ts: str) -> bool:
        return self._guarded(
            claim.alert.id,
            {"channel": channel, "message_ts": ts},
            AlertRow.message_ts == claim.token,
        )

    def release_post(self, claim: PostClaim) -> None:
        self._guarded(claim.alert.id, {"message_ts": None}, AlertRow.message_ts == claim.token)

    def _guarded(self, alert_id: str, values: dict[str, Any], *conditions: Any) -> bool:
        with transaction(self._engine) as conn:
            result = conn.execute(
                update(AlertRow).where(AlertRow.id == alert_id, *conditions).values(**values)
            )
        return result.rowcount == 1

    # -- queries ----------------------------------------------------------------------------

    def get(self, alert_id: str) -> AlertRecord:
        with read_session(self._engine) as session:
            row = session.get(AlertRow, alert_id)
            if row is None:
                raise NotFound(f"There is no alert with id {alert_id!r}.")
            return AlertRecord.from_row(row)

    def open_alerts(self) -> list[AlertRecord]:
        """Open alerts, oldest first."""
        return self._all(
            select(AlertRow).where(AlertRow.status == OPEN).order_by(AlertRow.opened_at)
        )

    def unposted(self) -> list[AlertRecord]:
        """Open alerts whose message is not (known to be) in Slack yet."""
        return self._all(
            select(AlertRow)
            .where(
                AlertRow.status == OPEN,
                or_(AlertRow.message_ts.is_(None), AlertRow.message_ts.like(CLAIM_PREFIX + "%")),
            )
            .order_by(AlertRow.opened_at)
        )

    def resolving(self, now: datetime) -> list[AlertRecord]:
        """Cleared alerts whose resolution Slack has not shown yet, except those whose
        message another process is posting right now."""
        with read_session(self._engine) as session:
            rows = session.scalars(
                select(AlertRow).where(AlertRow.status == RESOLVING).order_by(AlertRow.resolved_at)
            ).all()
            return [
                AlertRecord.from_row(r)
                for r in rows
                if not (_is_claim(r.message_ts) and _claim_fresh(str(r.message_ts), now))
            ]

    def recent(self, limit: int = 20) -> list[AlertRecord]:
        return self._all(select(AlertRow).order_by(AlertRow.opened_at.desc()).limit(limit))

    def _all(self, stmt: Any) -> list[AlertRecord]:
        with read_session(self._engine) as session:
            return [AlertRecord.from_row(r) for r in session.scalars(stmt)]


# -- the backup facts escalation judges ------------------------------------------------------


@dataclass(frozen=True)
class AttemptFact:
    """One finished backup attempt; `error_type` comes from its `backup.failed` record."""

    id: str
    database: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    error_type: str | None = None


class BackupFacts:
    """Read-only queries over the catalog and the incident log for `BackupConditions`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def latest_verified(self, database: str) -> AttemptFact | None:
        """The newest succeeded (verified) backup whose artifact still exists."""
        stmt = (
            select(BackupRow)
            .where(
                BackupRow.database == database,
                BackupRow.status == "succeeded",
                BackupRow.deleted_at.is_(None),
            )
            .order_by(BackupRow.started_at.desc())
            .limit(1)
        )
        with read_session(self._engine) as session:
            row = session.scalars(stmt).first()
            return _attempt(row) if row else None

    def failures_since(
        self, database: str, since: datetime | None, limit: int = 100
    ) -> list[AttemptFact]:
        """Failed attempts that started after `since` (all when None), newest first, each
        with the error type its `backup.failed` record names."""
        stmt = select(BackupRow).where(BackupRow.database == database, BackupRow.status == "failed")
        if since is not None:
            stmt = stmt.where(BackupRow.started_at > since)
        stmt = stmt.order_by(BackupRow.started_at.desc()).limit(limit)
        with read_session(self._engine) as session:
            rows = list(session.scalars(stmt))
            if not rows:
                return []
            types: dict[str, str] = {}
            incidents = session.scalars(
                select(IncidentRow).where(
                    IncidentRow.action == "backup.failed",
                    IncidentRow.backup_id.in_([r.id for r in rows]),
                )
            )
            for inc in incidents:
                error_type = (inc.details or {}).get("error_type")
                if inc.backup_id and error_type:
                    types[inc.backup_id] = str(error_type)
            return [_attempt(r, types.get(r.id)) for r in rows]

    def first_seen(self, database: str) -> datetime | None:
        """When the bot's records first mention the database: its first backup attempt or
        incident record, whichever is earlier."""
        with read_session(self._engine) as session:
            first_backup = session.scalar(
                select(func.min(BackupRow.started_at)).where(BackupRow.database == database)
            )
            first_incident = session.scalar(
                select(func.min(IncidentRow.at)).where(IncidentRow.database == database)
            )
        seen = [t for t in (first_backup, first_incident) if t is not None]
        return min(seen) if seen else None


def _attempt(row: BackupRow, error_type: str | None = None) -> AttemptFact:
    return AttemptFact(
        id=row.id,
        database=row.database,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=row.error,
        error_type=error_type,
    )
