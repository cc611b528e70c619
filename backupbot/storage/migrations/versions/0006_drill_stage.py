"""Where a running drill is: `queued` while it waits in the job queue for a worker, then
the stage its worker reached. A worker claims a drill by moving it out of `queued` with
a guarded update (`storage/drills.py`).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("drills", sa.Column("stage", sa.String(20)))


def downgrade() -> None:
    with op.batch_alter_table("drills") as batch:
        batch.drop_column("stage")
