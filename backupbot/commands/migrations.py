"""Prisma migrations (the runbook's Scenario 3): `/backup migrations DB`, and what restore
requests, restore reports and status say about them.

The history is read as Prisma reads it (`storage/prisma.py`). Backups record it in the
manifest (`prisma_migration`: the head, and the names applied, failed and rolled back),
restore requests the target's, so a request can warn when the target is ahead of the
backup and a restore's report can name what the restored database lacks.

Marking a failed migration rolled back is not done by the bot: it shows the exact
`prisma migrate resolve --rolled-back` command instead. Prisma checks the name against the
app's `prisma/migrations` directory, which the bot does not have, and the command is only
right once someone has undone what the failed migration changed; that is the app team's
step, in the app's repository.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backupbot.commands.command_spec import resolve_database
from backupbot.phrases import Command, Name, Phrase, names, say
from backupbot.settings import DatabaseSettings
from backupbot.storage.catalog import SUCCEEDED, BackupCatalog, BackupRecord
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.prisma import FAILED, Migration, head_of, read_migrations
from backupbot.storage.restore_record import RestoreRecord

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def resolve_command(name: str) -> str:
    """`npx prisma migrate resolve --rolled-back "NAME"`, quoted for a shell whatever the
    name holds (it comes from the database)."""
    quoted = f'"{name}"' if _PLAIN_NAME.fullmatch(name) else shlex.quote(name)
    return f"npx prisma migrate resolve --rolled-back {quoted}"


def _applied(facts: dict[str, Any] | None) -> set[str]:
    return set((facts or {}).get("applied") or [])


def _head(facts: dict[str, Any] | None) -> str | None:
    name = (facts or {}).get("migration_name")
    return str(name) if name else None


def ahead_of_backup(backup: dict[str, Any] | None, target: dict[str, Any] | None) -> list[str]:
    """The migrations applied on the target that the backup has not: what the app running
    on the target expects and the restore takes away. Empty unless the target's head is
    after the backup's. A manifest from before the applied list was recorded is compared
    by head: the target's migrations named after the backup's head."""
    target_head, backup_head = _head(target), _head(backup)
    if target_head is None or (backup_head is not None and target_head <= backup_head):
        return []
    newer = sorted(_applied(target) or {target_head})
    if backup and "applied" in backup:
        return [n for n in newer if n not in _applied(backup)]
    return [n for n in newer if backup_head is None or n > backup_head]


def lacking(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """The migrations applied before a restore that the restored database lacks."""
    return sorted(_applied(before) - _applied(after))


def restore_facts(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """What a restore's result and record keep: the head before and after, what is lost."""
    return {
        "before": _head(before),
        "after": _head(after),
        "lacks": lacking(before, after),
        "failed_after": list((after or {}).get("failed") or []),
    }


def failed_warning(
    database: str, backup: BackupRecord | None, restore: RestoreRecord | None = None
) -> Phrase | None:
    """`/backup status`'s warning when the newest record of the database's migration
    history saw a failed migration: the newest verified backup's manifest, or an in-place
    restore finished after that backup started (its result's `prisma.failed_after`; one
    without Prisma facts, a provider's, leaves it unknown until the next backup)."""
    failed: list[str] = []
    source: tuple[str, str] | None = None
    if backup is not None:
        failed = list(((backup.manifest or {}).get("prisma_migration") or {}).get("failed") or [])
        source = ("backup", backup.id)
    done = restore.finished_at if restore is not None else None
    if restore is not None and done is not None and (backup is None or done > backup.started_at):
        failed = list(((restore.result or {}).get("prisma") or {}).get("failed_after") or [])
        source = ("restore", restore.id)
    if not failed or source is None:
        return None
    return say(
        "Prisma migration {names} failed (as of {kind} {id}): {deploy} applies nothing "
        "until it is resolved. See {cmd}.",
        names=names(failed),
        deploy=Name("prisma migrate deploy"),
        kind=source[0],
        id=Name(source[1]),
        cmd=Command("migrations", database),
    )


@dataclass(frozen=True)
class MigrationsView:
    """`/backup migrations DB`: every row of `_prisma_migrations` (None: no such table),
    the head, and the head the newest verified backup recorded."""

    database: str
    rows: list[Migration] | None
    backup: BackupRecord | None

    @property
    def head(self) -> Migration | None:
        return head_of(self.rows or [])

    @property
    def failed(self) -> list[Migration]:
        return [m for m in self.rows or [] if m.state == FAILED]

    @property
    def backup_head(self) -> str | None:
        return _head((self.backup.manifest or {}).get("prisma_migration") if self.backup else None)

    def as_json(self) -> dict[str, Any]:
        head = self.head
        return {
            "database": self.database,
            "prisma": self.rows is not None,
            "head": head.name if head else None,
            "migrations": [
                {
                    "name": m.name,
                    "state": m.state,
                    "started_at": m.started_at.isoformat() if m.started_at else None,
                    "finished_at": m.finished_at.isoformat() if m.finished_at else None,
                    "rolled_back_at": m.rolled_back_at.isoformat() if m.rolled_back_at else None,
                    "applied_steps_count": m.applied_steps_count,
                }
                for m in self.rows or []
            ],
            "resolve_commands": [resolve_command(m.name) for m in self.failed],
            "backup_id": self.backup.id if self.backup else None,
            "backup_head": self.backup_head,
        }


class MigrationService:
    """Reads a configured database's `_prisma_migrations` for `/backup migrations`."""

    def __init__(self, *, databases: Sequence[DatabaseSettings], catalog: BackupCatalog) -> None:
        self._databases = {d.name: d for d in databases}
        self._catalog = catalog

    def view(self, database: str) -> MigrationsView:
        name = resolve_database(database, list(self._databases), "migrations")
        conn_info = ConnInfo.from_url(self._databases[name].url.get_secret_value())
        with conn_info.connect(autocommit=True) as conn:
            rows = read_migrations(conn)
        return MigrationsView(name, rows, self._catalog.latest(name, SUCCEEDED))
