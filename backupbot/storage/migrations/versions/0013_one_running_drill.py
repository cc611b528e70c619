"""At most one running (or waiting) drill per database: a unique index on `database`
over running rows, so two `/backup drill app` at once start one drill (the second is
told it is running), whichever process wins the insert.

Drills already running twice (possible before this index) keep the newest; the older
ones are failed, saying why.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    op.execute(
        "UPDATE drills SET status = 'failed', "
        "error = 'Another drill of this database was started at the same time; this one "
        "was stopped when the bot was upgraded.' "
        "WHERE status = 'running' AND EXISTS (SELECT 1 FROM drills newer "
        "WHERE newer.database = drills.database AND newer.status = 'running' "
        "AND (newer.started_at > drills.started_at "
        "OR (newer.started_at = drills.started_at AND newer.id > drills.id)))"
    )
    op.create_index(
        "uq_drill_running",
        "drills",
        ["database"],
        unique=True,
        sqlite_where=RUNNING,
        postgresql_where=RUNNING,
    )


def downgrade() -> None:
    op.drop_index("uq_drill_running", table_name="drills")
