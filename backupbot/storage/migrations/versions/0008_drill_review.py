"""A person reviews a finished restore drill's result (the runbook's "Tested:" line
names them): who and when, set once by a guarded update (`storage/drills.py`).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from backupbot.storage.models import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("drills", sa.Column("reviewed_by", sa.String(120)))
    op.add_column("drills", sa.Column("reviewed_at", UTCDateTime()))


def downgrade() -> None:
    with op.batch_alter_table("drills") as batch:
        batch.drop_column("reviewed_at")
        batch.drop_column("reviewed_by")
