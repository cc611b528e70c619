"""SQLAlchemy models for backupbot's own state: backups, restores, the incident log,
scheduled runs, drills, alerts and checklists."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, on SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state database; use UTC-aware times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    pass


class BackupRow(Base):
    """One backup attempt. `running_lock` holds the database name while the backup runs:
    a unique column, so a second concurrent backup of the same database cannot be inserted."""

    __tablename__ = "backups"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    database: Mapped[str] = mapped_column(String(63), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    running_lock: Mapped[str | None] = mapped_column(String(63), unique=True)
    actor: Mapped[str] = mapped_column(String(120))
    label: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    progress_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    store: Mapped[str] = mapped_column(String(16))
    artifact_key: Mapped[str | None] = mapped_column(String(1024))
    manifest_key: Mapped[str | None] = mapped_column(String(1024))
    location: Mapped[str | None] = mapped_column(String(1200))
    raw_size: Mapped[int | None] = mapped_column(BigInteger)
    stored_size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    compression: Mapped[str | None] = mapped_column(String(40))
    server_version: Mapped[str | None] = mapped_column(String(40))
    pg_dump_version: Mapped[str | None] = mapped_column(String(80))
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # by retention
    stage: Mapped[str | None] = mapped_column(String(40))  # where a running backup is
    owner: Mapped[str | None] = mapped_column(String(200))  # host:pid running it
    channel: Mapped[str | None] = mapped_column(String(40))  # its channel message
    message_ts: Mapped[str | None] = mapped_column(String(40))


class IncidentRow(Base):
    """An append-only record of one action (triggers refuse UPDATE and DELETE)."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(120))
    database: Mapped[str | None] = mapped_column(String(63), index=True)
    action: Mapped[str] = mapped_column(String(60))
    outcome: Mapped[str] = mapped_column(String(20))
    backup_id: Mapped[str | None] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str | None] = mapped_column(String(64))  # see incident_chain
    hash: Mapped[str | None] = mapped_column(String(64))


class RestoreRow(Base):
    """One restore request, from request through decision to result.

    `target_lock` holds the target's `host:port/dbname` while the request is pending or
    running: a unique column, so a second open restore of the same target cannot exist.
    `approval_count` is the compare-and-set counter approvals are guarded on.
    """

    __tablename__ = "restores"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    database: Mapped[str] = mapped_column(String(63), index=True)
    backup_id: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(12))
    target_db: Mapped[str] = mapped_column(String(63))
    target_where: Mapped[str] = mapped_column(String(400))
    target_name: Mapped[str | None] = mapped_column(String(63))  # a `targets:` entry
    target_lock: Mapped[str | None] = mapped_column(String(400), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    requester: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str | None] = mapped_column(Text)
    required_approvals: Mapped[int] = mapped_column(Integer)
    approval_count: Mapped[int] = mapped_column(Integer, default=0)
    approvals: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    policy: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # approval stages
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    channel: Mapped[str | None] = mapped_column(String(40))
    message_ts: Mapped[str | None] = mapped_column(String(40))
    owner: Mapped[str | None] = mapped_column(String(200))  # host:pid running it
    preview: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False)
    announce_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    stage: Mapped[str | None] = mapped_column(String(20))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    safety_backup_id: Mapped[str | None] = mapped_column(String(16))
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    # A provider restore (migration 0014): 'backup' (pg_restore of backup_id) or
    # 'provider' (the point or snapshot below, through the provider's API).
    source_kind: Mapped[str] = mapped_column(String(12), default="backup", server_default="backup")
    provider: Mapped[str | None] = mapped_column(String(20))
    point_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    snapshot_id: Mapped[str | None] = mapped_column(String(200))
    provider_into: Mapped[str | None] = mapped_column(String(12))  # new | in_place
    operation_id: Mapped[str | None] = mapped_column(String(400))
    result_name: Mapped[str | None] = mapped_column(String(200))  # branch/instance/service
    result_host: Mapped[str | None] = mapped_column(String(255))  # never the URL


class OutboxRow(Base):
    """A Slack message that must arrive (a result), written before it is sent and marked
    after (`storage/outbox.py`). `key` names the logical message: a newer version of the
    same key supersedes an older one still waiting."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(120), index=True)
    channel: Mapped[str] = mapped_column(String(40))
    ts: Mapped[str | None] = mapped_column(String(40))  # set: update that message
    thread_ts: Mapped[str | None] = mapped_column(String(40))  # a reply in this thread
    message: Mapped[dict[str, Any]] = mapped_column(JSON)  # text, blocks, notify
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)


class DrillPostponementRow(Base):
    """The scheduled drill of one database at one firing, moved to `run_at`. Unique per
    (database, firing); `started_at` is set by the guarded update that starts it."""

    __tablename__ = "drill_postponements"
    __table_args__ = (UniqueConstraint("database", "firing_at", name="uq_drill_postponement"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    database: Mapped[str] = mapped_column(String(63), index=True)
    firing_at: Mapped[datetime] = mapped_column(UTCDateTime())
    run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    requested_by: Mapped[str] = mapped_column(String(120))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OperationNoteRow(Base):
    """An operation done outside the bot (`/backup note`): a provider-dashboard restore,
    a manual pg_restore, a staging restore test. Confirmed once, by a guarded update."""

    __tablename__ = "operation_notes"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    database: Mapped[str] = mapped_column(String(63), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    confirmed_by: Mapped[str | None] = mapped_column(String(120))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    channel: Mapped[str | None] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))


class ScheduledRunRow(Base):
    """One firing of a scheduled job. The unique (job, scheduled_for) key is the second
    guard (after the scheduler's leader lock) that a scheduled run happens exactly once."""

    __tablename__ = "scheduled_runs"
    __table_args__ = (UniqueConstraint("job", "scheduled_for", name="uq_scheduled_run"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(120), index=True)
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))  # running/done/failed/missed/skipped
    claimed_by: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    late_seconds: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DrillRow(Base):
    """One restore drill: the latest verified backup restored into a scratch database,
    verified, timed against the RTO, and the scratch database dropped again.

    `scratch_dropped` stays false until the scratch database is confirmed gone, so a bot
    restarted mid-drill knows exactly which databases are its leftovers.
    """

    __tablename__ = "drills"
    __table_args__ = (
        Index(
            "uq_drill_running",
            "database",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    database: Mapped[str] = mapped_column(String(63), index=True)
    backup_id: Mapped[str | None] = mapped_column(String(16))
    restore_id: Mapped[str | None] = mapped_column(String(16))
    scratch_db: Mapped[str] = mapped_column(String(63))
    target_name: Mapped[str | None] = mapped_column(String(63))  # the scratch's server
    scratch_dropped: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), index=True)  # running/passed/failed
    actor: Mapped[str] = mapped_column(String(120))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    total_seconds: Mapped[float | None] = mapped_column(Float)
    rto_minutes: Mapped[int] = mapped_column(Integer)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(40))
    message_ts: Mapped[str | None] = mapped_column(String(40))
    owner: Mapped[str | None] = mapped_column(String(200))  # host:pid running it
    stage: Mapped[str | None] = mapped_column(String(20))  # queued, then where it runs
    reviewed_by: Mapped[str | None] = mapped_column(String(120))  # who reviewed the result
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AlertRow(Base):
    """An escalation alert. `open_key` holds "condition:database" while the alert is open
    (unique), so one condition of one database has at most one open alert."""

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    condition: Mapped[str] = mapped_column(String(40))
    database: Mapped[str | None] = mapped_column(String(63), index=True)
    open_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # open/resolved
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    levels_fired: Mapped[int] = mapped_column(Integer, default=0)  # compare-and-set counter
    acknowledged_by: Mapped[str | None] = mapped_column(String(120))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(40))
    message_ts: Mapped[str | None] = mapped_column(String(40))


class ChecklistRow(Base):
    """The monthly verification checklist of one period ("2026-11"): the bot's evaluation,
    what people ticked, and the sign-off."""

    __tablename__ = "checklists"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), unique=True)
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    evaluation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ticked: Mapped[list[str]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=0)  # compare-and-set counter
    signed_off_by: Mapped[str | None] = mapped_column(String(120))
    signed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    channel: Mapped[str | None] = mapped_column(String(40))
    message_ts: Mapped[str | None] = mapped_column(String(40))
