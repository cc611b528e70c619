"""Monthly verification checklists, and the evidence the bot evaluates them on.

One row per period ("2026-12"; the unique `period` column makes creating it idempotent
across processes). Every change is a guarded update that acts only when one row changed:
posting is claimed (`channel` set while `message_ts` is empty) before the message is sent,
ticks and the sign-off are compare-and-set on `version`, and the reminder is claimed on
`reminded_at`. The evidence queries read the catalog, the incident log and the drills
table directly and hand out plain facts, so the evaluation itself needs no database.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.exc import IntegrityError

from backupbot.errors import NotFound
from backupbot.phrases import Phrase, as_phrase, loads
from backupbot.storage.models import BackupRow, ChecklistRow, DrillRow, IncidentRow
from backupbot.storage.operation_notes import OperationNote, OperationNotes
from backupbot.storage.unit_of_work import orm_session, read_session, transaction


@dataclass(frozen=True)
class ChecklistRecord:
    id: str
    period: str
    posted_at: datetime
    evaluation: dict[str, Any]
    ticked: tuple[str, ...]
    version: int
    signed_off_by: str | None
    signed_off_at: datetime | None
    reminded_at: datetime | None
    channel: str | None
    message_ts: str | None

    @classmethod
    def from_row(cls, row: ChecklistRow) -> ChecklistRecord:
        values = {f: getattr(row, f) for f in cls.__dataclass_fields__}
        values["evaluation"] = dict(row.evaluation or {})
        values["ticked"] = tuple(row.ticked or ())
        return cls(**values)

    @property
    def signed_off(self) -> bool:
        return self.signed_off_by is not None

    @property
    def posted(self) -> bool:
        return self.message_ts is not None


def new_checklist_id() -> str:
    return "c" + secrets.token_hex(4)


class Checklists:
    """The checklist rows; every transition is a guarded update."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self, period: str, now: datetime) -> tuple[ChecklistRecord, bool]:
        """The period's checklist, inserted if missing; True when this call inserted it."""
        row = ChecklistRow(
            id=new_checklist_id(),
            period=period,
            posted_at=now,
            evaluation={},
            ticked=[],
            version=0,
        )
        try:
            with orm_session(self._engine) as session, session.begin_nested():
                session.add(row)
            return ChecklistRecord.from_row(row), True
        except IntegrityError:
            existing = self.for_period(period)
            assert existing is not None  # the unique key said it exists
            return existing, False

    def claim_post(
        self,
        checklist_id: str,
        channel: str,
        now: datetime,
        evaluation: dict[str, Any],
        stale_before: datetime,
    ) -> bool:
        """Claim the right to post the message: true for exactly one caller while it is
        unposted. A claim older than `stale_before` (its process died) can be taken over."""
        return self._guarded(
            checklist_id,
            {"channel": channel, "posted_at": now, "evaluation": evaluation},
            ChecklistRow.message_ts.is_(None),
            or_(ChecklistRow.channel.is_(None), ChecklistRow.posted_at < stale_before),
        )

    def release_post(self, checklist_id: str) -> None:
        """Give the claim back when the message could not be posted."""
        self._guarded(checklist_id, {"channel": None}, ChecklistRow.message_ts.is_(None))

    def set_message(self, checklist_id: str, channel: str, ts: str) -> bool:
        return self._guarded(
            checklist_id, {"channel": channel, "message_ts": ts}, ChecklistRow.message_ts.is_(None)
        )

    def set_ticked(self, checklist_id: str, ticked: Sequence[str], seen_version: int) -> bool:
        """Store the ticked set on top of version `seen_version` (compare-and-set)."""
        return self._guarded(
            checklist_id,
            {"ticked": list(ticked), "version": seen_version + 1},
            ChecklistRow.version == seen_version,
            ChecklistRow.signed_off_by.is_(None),
        )

    def sign_off(
        self,
        checklist_id: str,
        user: str,
        now: datetime,
        evaluation: dict[str, Any],
        seen_version: int,
    ) -> bool:
        """Record the sign-off (and the evaluation at that moment) on top of `seen_version`."""
        return self._guarded(
            checklist_id,
            {
                "signed_off_by": user,
                "signed_off_at": now,
                "evaluation": evaluation,
                "version": seen_version + 1,
            },
            ChecklistRow.version == seen_version,
            ChecklistRow.signed_off_by.is_(None),
        )

    def claim_reminder(self, checklist_id: str, now: datetime) -> bool:
        return self._guarded(
            checklist_id,
            {"reminded_at": now},
            ChecklistRow.reminded_at.is_(None),
            ChecklistRow.signed_off_by.is_(None),
        )

    def release_reminder(self, checklist_id: str) -> None:
        self._guarded(checklist_id, {"reminded_at": None})

    def _guarded(self, checklist_id: str, values: dict[str, Any], *conditions: Any) -> bool:
        with transaction(self._engine) as conn:
            result = conn.execute(
                update(ChecklistRow)
                .where(ChecklistRow.id == checklist_id, *conditions)
                .values(**values)
            )
        return result.rowcount == 1

    # -- queries --------------------------------------------------------------------------

    def get(self, checklist_id: str) -> ChecklistRecord:
        with read_session(self._engine) as session:
            row = session.get(ChecklistRow, checklist_id)
            if row is None:
                raise NotFound(f"There is no checklist with id {checklist_id!r}.")
            return ChecklistRecord.from_row(row)

    def for_period(self, period: str) -> ChecklistRecord | None:
        return self._first(select(ChecklistRow).where(ChecklistRow.period == period))

    def latest(self, up_to_period: str) -> ChecklistRecord | None:
        """The newest checklist of `up_to_period` or an earlier one."""
        return self._first(
            select(ChecklistRow)
            .where(ChecklistRow.period <= up_to_period)
            .order_by(ChecklistRow.period.desc())
            .limit(1)
        )

    def _first(self, stmt: Any) -> ChecklistRecord | None:
        with read_session(self._engine) as session:
            row = session.scalars(stmt).first()
            return ChecklistRecord.from_row(row) if row else None


# -- evidence -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupFact:
    """A verified (succeeded) backup."""

    id: str
    database: str
    started_at: datetime
    stored_size: int | None
    label: str | None
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class DrillFact:
    id: str
    database: str
    status: str  # running | passed | failed
    started_at: datetime
    finished_at: datetime | None = None
    total_seconds: float | None = None
    rto_minutes: int | None = None
    error: str | None = None
    failed_stage: str | None = None  # from the drill's result, when it says
    error_type: str | None = None
    restore_id: str | None = None
    channel: str | None = None
    message_ts: str | None = None
    error_phrase: Phrase = field(default_factory=Phrase)  # `error` as front ends render it
    reviewed_by: str | None = None  # who reviewed the result (the drill message's button)

    def __post_init__(self) -> None:
        if not self.error_phrase and self.error:
            object.__setattr__(self, "error_phrase", as_phrase(self.error))


@dataclass(frozen=True)
class IncidentFact:
    id: int
    at: datetime
    action: str
    outcome: str
    database: str | None
    backup_id: str | None
    details: dict[str, Any]


class ChecklistEvidenceQueries:
    """Read-only queries for the checklist's evidence."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def verified_backups(self, since: datetime) -> list[BackupFact]:
        """Succeeded backups started since `since` (deleted ones too: they still ran), and
        every succeeded backup whose artifact is still kept (for the retention check)."""
        stmt = (
            select(BackupRow)
            .where(
                BackupRow.status == "succeeded",
                or_(BackupRow.started_at >= since, BackupRow.deleted_at.is_(None)),
            )
            .order_by(BackupRow.started_at)
        )
        with read_session(self._engine) as session:
            return [
                BackupFact(
                    id=r.id,
                    database=r.database,
                    started_at=r.started_at,
                    stored_size=r.stored_size,
                    label=r.label,
                    deleted_at=r.deleted_at,
                )
                for r in session.scalars(stmt)
            ]

    def drills(self, since: datetime) -> list[DrillFact]:
        stmt = select(DrillRow).where(DrillRow.started_at >= since).order_by(DrillRow.started_at)
        with read_session(self._engine) as session:
            return [_drill_fact(r) for r in session.scalars(stmt)]

    def recent_drills(self, databases: Iterable[str], limit: int) -> list[DrillFact]:
        """The newest `limit` drills of each database, whatever their age."""
        with read_session(self._engine) as session:
            return [
                _drill_fact(r)
                for name in databases
                for r in session.scalars(
                    select(DrillRow)
                    .where(DrillRow.database == name)
                    .order_by(DrillRow.started_at.desc())
                    .limit(limit)
                )
            ]

    def staging_restores(self, since: datetime) -> list[OperationNote]:
        """Staging restores noted by hand (`/backup note`) since `since`, oldest first."""
        return OperationNotes(self._engine).staging_restores(since)

    def incidents(self, since: datetime, actions: Iterable[str]) -> list[IncidentFact]:
        stmt = (
            select(IncidentRow)
            .where(IncidentRow.at >= since, IncidentRow.action.in_(list(actions)))
            .order_by(IncidentRow.id)
        )
        with read_session(self._engine) as session:
            return [_incident_fact(r) for r in session.scalars(stmt)]

    def last_incident(self, action: str, *, all_databases: bool = False) -> IncidentFact | None:
        """The newest record of `action`; with `all_databases`, only records about no one
        database (a scheduled retention run covers all, a manual one may cover one)."""
        stmt = select(IncidentRow).where(IncidentRow.action == action)
        if all_databases:
            stmt = stmt.where(IncidentRow.database.is_(None))
        with read_session(self._engine) as session:
            row = session.scalars(stmt.order_by(IncidentRow.id.desc()).limit(1)).first()
            return _incident_fact(row) if row else None


def _incident_fact(row: IncidentRow) -> IncidentFact:
    return IncidentFact(
        id=row.id,
        at=row.at,
        action=row.action,
        outcome=row.outcome,
        database=row.database,
        backup_id=row.backup_id,
        details=dict(row.details or {}),
    )


def _drill_fact(row: DrillRow) -> DrillFact:
    result = dict(row.result or {})
    stage = result.get("failed_stage") or result.get("stage")
    error_type = result.get("error_type")
    error = loads(row.error) if row.error is not None else None  # a stored phrase
    return DrillFact(
        id=row.id,
        database=row.database,
        status=row.status,
        started_at=row.started_at,
        finished_at=row.finished_at,
        total_seconds=row.total_seconds,
        rto_minutes=row.rto_minutes,
        error=None if error is None else str(error),
        error_phrase=error or Phrase(),
        reviewed_by=row.reviewed_by,
        failed_stage=str(stage) if stage else None,
        error_type=str(error_type) if error_type else None,
        restore_id=row.restore_id,
        channel=row.channel,
        message_ts=row.message_ts,
    )
