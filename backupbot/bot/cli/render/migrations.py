"""`backupbot migrations DB`: Prisma's migration history in a terminal, as Prisma sees it."""

from __future__ import annotations

from backupbot.commands import humanize
from backupbot.commands.migrations import MigrationsView, resolve_command
from backupbot.storage.prisma import APPLIED, ROLLED_BACK


def view_lines(view: MigrationsView) -> list[str]:
    """Head, failed (each with the resolve command), applied newest first, rolled back."""
    if view.rows is None:
        return [f"{view.database}: no _prisma_migrations table (it does not use Prisma Migrate)"]
    head = view.head
    applied = sorted(
        (m for m in view.rows if m.state == APPLIED), key=lambda m: m.name, reverse=True
    )
    rolled = [m for m in view.rows if m.state == ROLLED_BACK]
    lines = [
        f"{view.database}: head {head.name if head else 'none'}; {len(applied)} applied, "
        f"{len(view.failed)} failed, {len(rolled)} rolled back"
    ]
    for m in view.failed:
        lines.append(
            f"failed       {m.name}  started {humanize.utc(m.started_at)}, "
            f"{m.applied_steps_count} step(s) applied"
        )
        lines.append(f"  once its changes are undone: {resolve_command(m.name)}")
    lines += [f"applied      {m.name}  finished {humanize.utc(m.finished_at)}" for m in applied]
    lines += [f"rolled back  {m.name}  at {humanize.utc(m.rolled_back_at)}" for m in rolled]
    if view.backup is not None:
        lines.append(
            f"newest verified backup {view.backup.id} ({humanize.utc(view.backup.started_at)}): "
            f"head {view.backup_head or 'none'}"
        )
    return lines
