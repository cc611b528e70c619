"""Restores through a database's provider (Neon, Supabase, Railway, Render): a restore
request whose source is a provider point in time or snapshot instead of a backup.
`source_kind` says which ('backup' for every earlier row); the point (UTC), the
snapshot, where it goes (`provider_into`: new or in_place), the provider's operation id
and the result's name and host (never its connection URL: that may carry a password).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

from backupbot.storage.models import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

COLUMNS = (
    "source_kind",
    "provider",
    "point_at",
    "snapshot_id",
    "provider_into",
    "operation_id",
    "result_name",
    "result_host",
)


def upgrade() -> None:
    op.add_column(
        "restores",
        sa.Column("source_kind", sa.String(12), nullable=False, server_default="backup"),
    )
    op.add_column("restores", sa.Column("provider", sa.String(20)))
    op.add_column("restores", sa.Column("point_at", UTCDateTime()))
    op.add_column("restores", sa.Column("snapshot_id", sa.String(200)))
    op.add_column("restores", sa.Column("provider_into", sa.String(12)))
    op.add_column("restores", sa.Column("operation_id", sa.String(400)))
    op.add_column("restores", sa.Column("result_name", sa.String(200)))
    op.add_column("restores", sa.Column("result_host", sa.String(255)))


def downgrade() -> None:
    with op.batch_alter_table("restores") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
