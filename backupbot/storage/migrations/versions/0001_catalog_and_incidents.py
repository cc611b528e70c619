"""Backup catalog and append-only incident log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from backupbot.storage.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backups",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("database", sa.String(63), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("running_lock", sa.String(63), unique=True),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("label", sa.String(200)),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("progress_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("store", sa.String(16), nullable=False),
        sa.Column("artifact_key", sa.String(1024)),
        sa.Column("manifest_key", sa.String(1024)),
        sa.Column("location", sa.String(1200)),
        sa.Column("raw_size", sa.BigInteger),
        sa.Column("stored_size", sa.BigInteger),
        sa.Column("sha256", sa.String(64)),
        sa.Column("compression", sa.String(40)),
        sa.Column("server_version", sa.String(40)),
        sa.Column("pg_dump_version", sa.String(80)),
        sa.Column("manifest", sa.JSON),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False, index=True),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("database", sa.String(63), index=True),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("backup_id", sa.String(16)),
        sa.Column("details", sa.JSON, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION backupbot_incidents_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'the incident log is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER incidents_append_only BEFORE UPDATE OR DELETE ON incidents "
            "FOR EACH ROW EXECUTE FUNCTION backupbot_incidents_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER incidents_no_{event.lower()} BEFORE {event} ON incidents "
                "BEGIN SELECT RAISE(ABORT, 'the incident log is append-only'); END"
            )


def downgrade() -> None:
    op.drop_table("incidents")
    op.drop_table("backups")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS backupbot_incidents_append_only()")
