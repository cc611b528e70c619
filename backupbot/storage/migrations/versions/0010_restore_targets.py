"""Restore and drill targets on other servers (`targets:` in the config): the target a
restore writes, or the server a drill's scratch database lives on. NULL: the source's
own server, as before.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("restores", sa.Column("target_name", sa.String(63)))
    op.add_column("drills", sa.Column("target_name", sa.String(63)))


def downgrade() -> None:
    with op.batch_alter_table("drills") as batch:
        batch.drop_column("target_name")
    with op.batch_alter_table("restores") as batch:
        batch.drop_column("target_name")
