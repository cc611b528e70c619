"""Operations done outside the bot (`/backup note app restore ...`): one row per note,
confirmed once by a second person with a guarded update (`storage/operation_notes.py`).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from backupbot.storage.models import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operation_notes",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("database", sa.String(63), nullable=False, index=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("author", sa.String(120), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
        sa.Column("confirmed_by", sa.String(120)),
        sa.Column("confirmed_at", UTCDateTime()),
        sa.Column("channel", sa.String(32)),
        sa.Column("message_ts", sa.String(32)),
    )


def downgrade() -> None:
    op.drop_table("operation_notes")
