"""Staged approvals: a restore request keeps the approval stages it was made under
(`policy`, see `commands/approval_stages.py`) and how many expiry reminders were posted
(`reminders_sent`, a compare-and-set counter so exactly one process posts each).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("restores", sa.Column("policy", sa.JSON))
    op.add_column(
        "restores",
        sa.Column("reminders_sent", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("restores") as batch:
        batch.drop_column("reminders_sent")
        batch.drop_column("policy")
