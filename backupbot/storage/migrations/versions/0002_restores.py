"""Restore requests: approvals, execution and results.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from backupbot.storage.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "restores",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("database", sa.String(63), nullable=False, index=True),
        sa.Column("backup_id", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(12), nullable=False),
        sa.Column("target_db", sa.String(63), nullable=False),
        sa.Column("target_where", sa.String(400), nullable=False),
        sa.Column("target_lock", sa.String(400), unique=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("requester", sa.String(120), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("required_approvals", sa.Integer, nullable=False),
        sa.Column("approval_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("approvals", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("decided_by", sa.String(120)),
        sa.Column("decided_at", UTCDateTime()),
        sa.Column("channel", sa.String(40)),
        sa.Column("message_ts", sa.String(40)),
        sa.Column("preview", sa.JSON, nullable=False),
        sa.Column("break_glass", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("announce_pending", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("stage", sa.String(20)),
        sa.Column("heartbeat_at", UTCDateTime()),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("safety_backup_id", sa.String(16)),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("restores")
