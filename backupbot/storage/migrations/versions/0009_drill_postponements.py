"""Postponed scheduled drills (`/backup drill postpone app 3d`): one row per database
and firing, started once by a guarded update (`storage/drill_postponements.py`).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from backupbot.storage.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drill_postponements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("database", sa.String(63), nullable=False, index=True),
        sa.Column("firing_at", UTCDateTime(), nullable=False),
        sa.Column("run_at", UTCDateTime(), nullable=False),
        sa.Column("requested_by", sa.String(120), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.UniqueConstraint("database", "firing_at", name="uq_drill_postponement"),
    )


def downgrade() -> None:
    op.drop_table("drill_postponements")
