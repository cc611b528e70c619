"""The incident log's hash chain, and what a running backup records about itself: the
stage it is at, the process that owns it and its channel message.

Existing incident records are chained in id order, with the append-only triggers lifted
for the duration of this migration only.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from backupbot.storage.incident_chain import GENESIS, canonical, link
from backupbot.storage.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("incidents", sa.Column("prev_hash", sa.String(64)))
    op.add_column("incidents", sa.Column("hash", sa.String(64)))
    for name, type_ in (
        ("stage", sa.String(40)),
        ("owner", sa.String(200)),
        ("channel", sa.String(40)),
        ("message_ts", sa.String(40)),
    ):
        op.add_column("backups", sa.Column(name, type_))
    op.add_column("restores", sa.Column("owner", sa.String(200)))
    op.add_column("drills", sa.Column("owner", sa.String(200)))
    _chain_existing()


def _chain_existing() -> None:
    bind = op.get_bind()
    incidents = sa.table(
        "incidents",
        sa.column("id", sa.Integer),
        sa.column("at", UTCDateTime()),
        sa.column("actor", sa.String),
        sa.column("action", sa.String),
        sa.column("outcome", sa.String),
        sa.column("database", sa.String),
        sa.column("backup_id", sa.String),
        sa.column("details", sa.JSON),
        sa.column("prev_hash", sa.String),
        sa.column("hash", sa.String),
    )
    rows = bind.execute(sa.select(incidents).order_by(incidents.c.id)).mappings().all()
    if not rows:
        return
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE incidents DISABLE TRIGGER incidents_append_only")
    else:
        op.execute("DROP TRIGGER incidents_no_update")
    prev = GENESIS
    for row in rows:
        content = canonical(
            at=row["at"],
            actor=row["actor"],
            action=row["action"],
            outcome=row["outcome"],
            database=row["database"],
            backup_id=row["backup_id"],
            details=row["details"] or {},
        )
        digest = link(prev, content)
        bind.execute(
            incidents.update()
            .where(incidents.c.id == row["id"])
            .values(prev_hash=prev, hash=digest)
        )
        prev = digest
    if postgres:
        op.execute("ALTER TABLE incidents ENABLE TRIGGER incidents_append_only")
    else:
        op.execute(
            "CREATE TRIGGER incidents_no_update BEFORE UPDATE ON incidents "
            "BEGIN SELECT RAISE(ABORT, 'the incident log is append-only'); END"
        )


def downgrade() -> None:
    for table, column in (
        ("drills", "owner"),
        ("restores", "owner"),
        ("backups", "message_ts"),
        ("backups", "channel"),
        ("backups", "owner"),
        ("backups", "stage"),
        ("incidents", "hash"),
        ("incidents", "prev_hash"),
    ):
        op.drop_column(table, column)
