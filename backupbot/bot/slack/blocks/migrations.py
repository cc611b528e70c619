"""Block Kit for Prisma migrations: `/backup migrations DB`, and the lines restore requests
and reports add (`commands/migrations.py` has the facts). Names come from the database:
always through `code`."""

from __future__ import annotations

from typing import Any

from backupbot.bot.slack.kit import Block, Message, code, context, section
from backupbot.commands import humanize
from backupbot.commands.migrations import MigrationsView, resolve_command
from backupbot.storage.prisma import APPLIED, ROLLED_BACK, Migration

MAX_APPLIED = 15  # the newest; the rest are counted
MAX_NAMED = 10


def _named(items: list[str]) -> str:
    shown = ", ".join(code(n) for n in items[:MAX_NAMED])
    more = len(items) - MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def _failed_lines(failed: list[Migration]) -> list[str]:
    lines = [
        "*:x: Failed* (started, never finished, not rolled back): `prisma migrate deploy` "
        "applies nothing until it is resolved."
    ]
    for m in failed:
        lines.append(
            f"• {code(m.name)} started {humanize.utc(m.started_at)}, "
            f"{m.applied_steps_count} step(s) applied. Once what it changed is undone, mark "
            f"it rolled back and deploy again:\n    {code(resolve_command(m.name))}"
        )
    return lines


def migrations_message(view: MigrationsView) -> Message:
    """The history as Prisma sees it: failed first, then applied (newest first), then
    rolled back; the head and the newest verified backup's head."""
    db = code(view.database)
    if view.rows is None:
        text = f"{view.database} has no _prisma_migrations table: it does not use Prisma Migrate."
        return Message(
            text,
            [
                section(
                    f":card_index_dividers: {db} has no `_prisma_migrations` "
                    "table: it does not use Prisma Migrate."
                )
            ],
        )
    rows, head = view.rows, view.head
    applied = sorted((m for m in rows if m.state == APPLIED), key=lambda m: m.name, reverse=True)
    rolled = [m for m in rows if m.state == ROLLED_BACK]
    summary = (
        f"head {code(head.name) if head else '`none`'} · {len(applied)} applied, "
        f"{len(view.failed)} failed, {len(rolled)} rolled back"
    )
    blocks: list[Block] = [
        section(f":card_index_dividers: *Prisma migrations of {db}* · {summary}")
    ]
    if view.failed:
        blocks.append(section("\n".join(_failed_lines(view.failed))))
    if applied:
        lines = ["*Applied* (newest first)"]
        lines += [
            f"• {code(m.name)} finished {humanize.utc(m.finished_at)}"
            for m in applied[:MAX_APPLIED]
        ]
        if len(applied) > MAX_APPLIED:
            lines.append(f"…and {len(applied) - MAX_APPLIED} older")
        blocks.append(section("\n".join(lines)))
    if rolled:
        lines = ["*Rolled back* (kept by Prisma as a record; ignored otherwise)"]
        lines += [f"• {code(m.name)} rolled back {humanize.utc(m.rolled_back_at)}" for m in rolled]
        blocks.append(section("\n".join(lines)))
    if view.backup is not None:
        same = " (same as now)" if head and view.backup_head == head.name else ""
        blocks.append(
            context(
                f"Newest verified backup {code(view.backup.id)} "
                f"({humanize.utc(view.backup.started_at)}): head "
                f"{code(view.backup_head or 'none')}{same}"
            )
        )
    text = f"Prisma migrations of {view.database}: {summary.replace('`', '')}"
    return Message(text, blocks)


def ahead_line(preview: dict[str, Any]) -> str | None:
    """A restore request's warning: the target is at migrations the backup lacks."""
    ahead: list[str] = preview.get("prisma_ahead") or []
    if not ahead:
        return None
    return (
        f":warning: *The target's Prisma migrations are ahead of the backup's:* "
        f"{_named(ahead)} applied on the target, not in the backup. The app deployed there "
        "expects what they created, and the restore removes it: deploy the app version of "
        "the backup, or run `prisma migrate deploy` after the restore."
    )


def restore_lines(result: dict[str, Any]) -> list[str]:
    """A restore report's Prisma lines: the head before and after, what is lacking."""
    prisma: dict[str, Any] | None = result.get("prisma")
    if not prisma or not (prisma.get("before") or prisma.get("after")):
        return []
    lines = [
        f"*Prisma head:* {code(prisma.get('before') or 'none')} before → "
        f"{code(prisma.get('after') or 'none')} now"
    ]
    lacks: list[str] = prisma.get("lacks") or []
    if lacks:
        lines.append(
            f":warning: The restored database lacks {len(lacks)} migration(s) it had before: "
            f"{_named(lacks)}. Deploy the matching app version or run `prisma migrate deploy`."
        )
    return lines
