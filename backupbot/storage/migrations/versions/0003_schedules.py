"""Schedules: scheduled runs, restore drills, escalation alerts, monthly checklists, and
the time retention deleted a backup.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from backupbot.storage.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("backups", sa.Column("deleted_at", UTCDateTime()))
    op.create_table(
        "scheduled_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(120), nullable=False, index=True),
        sa.Column("scheduled_for", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("late_seconds", sa.Integer, nullable=False, server_default="0"),
        sa.Column("result", sa.JSON, nullable=False),
        sa.UniqueConstraint("job", "scheduled_for", name="uq_scheduled_run"),
    )
    op.create_table(
        "drills",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("database", sa.String(63), nullable=False, index=True),
        sa.Column("backup_id", sa.String(16)),
        sa.Column("restore_id", sa.String(16)),
        sa.Column("scratch_db", sa.String(63), nullable=False),
        sa.Column("scratch_dropped", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("total_seconds", sa.Float),
        sa.Column("rto_minutes", sa.Integer, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("channel", sa.String(40)),
        sa.Column("message_ts", sa.String(40)),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("condition", sa.String(40), nullable=False),
        sa.Column("database", sa.String(63), index=True),
        sa.Column("open_key", sa.String(120), unique=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("levels_fired", sa.Integer, nullable=False, server_default="0"),
        sa.Column("acknowledged_by", sa.String(120)),
        sa.Column("acknowledged_at", UTCDateTime()),
        sa.Column("resolved_at", UTCDateTime()),
        sa.Column("resolution", sa.Text),
        sa.Column("channel", sa.String(40)),
        sa.Column("message_ts", sa.String(40)),
    )
    op.create_table(
        "checklists",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("period", sa.String(7), nullable=False, unique=True),
        sa.Column("posted_at", UTCDateTime(), nullable=False),
        sa.Column("evaluation", sa.JSON, nullable=False),
        sa.Column("ticked", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("signed_off_by", sa.String(120)),
        sa.Column("signed_off_at", UTCDateTime()),
        sa.Column("reminded_at", UTCDateTime()),
        sa.Column("channel", sa.String(40)),
        sa.Column("message_ts", sa.String(40)),
    )


def downgrade() -> None:
    op.drop_table("checklists")
    op.drop_table("alerts")
    op.drop_table("drills")
    op.drop_table("scheduled_runs")
    op.drop_column("backups", "deleted_at")
