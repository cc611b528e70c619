"""The Slack outbox: results written before they are sent and marked after, so a Slack
outage or a stopped bot delays a result instead of losing it (`storage/outbox.py`).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from backupbot.storage.models import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(120), nullable=False, index=True),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("ts", sa.String(40)),
        sa.Column("thread_ts", sa.String(40)),
        sa.Column("message", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("error", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("outbox")
