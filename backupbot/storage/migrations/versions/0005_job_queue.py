"""The job queue's tables on PostgreSQL state: procrastinate's schema, as the pinned
procrastinate release ships it (`storage/job_queue.py`). SQLite state runs jobs in-process
and needs no tables.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from backupbot.storage.job_queue import schema_sql

    # The raw driver cursor: the schema is many statements with % and : in them.
    dbapi = bind.connection.dbapi_connection
    assert dbapi is not None  # alembic runs the migration on an open connection
    dbapi.cursor().execute(schema_sql())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("events", "periodic_defers", "jobs", "workers"):
            op.execute(f"DROP TABLE IF EXISTS procrastinate_{table} CASCADE")
