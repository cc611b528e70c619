"""Block Kit for `/backup points app`: the provider's window and snapshots and the bot's
verified backups in one list, newest first, each with the command that restores it.
Provider-supplied names and ids are escaped."""

from __future__ import annotations

from datetime import UTC, datetime

from backupbot.bot.slack.kit import Message, code, context, esc, section
from backupbot.commands import humanize
from backupbot.commands.provider_points import Point, PointsReport

_KIND = {"window": ":clock3:", "snapshot": ":camera:", "backup": ":floppy_disk:"}


def _line(db: str, p: Point, now: datetime) -> str:
    ask = code(" ".join(("/backup restore", db, *p.args)))
    if p.kind == "window":
        return (
            f"{_KIND['window']} *Any moment* from {humanize.utc(p.at)} to "
            f"{humanize.utc(p.until) if p.until else 'now'} (provider PITR): {ask}"
        )
    label = f" · {esc(p.label)}" if p.label else ""
    size = f" · {humanize.size(p.size_bytes)}" if p.size_bytes else ""
    what = "provider snapshot" if p.kind == "snapshot" else "bot backup, verified"
    age = humanize.age(p.at, now) if p.at else "?"
    return (
        f"{_KIND[p.kind]} {code(p.ident)} {humanize.utc(p.at)} ({age}) — {what}{label}{size}: {ask}"
    )


def points_message(report: PointsReport, now: datetime | None = None) -> Message:
    now = now or datetime.now(UTC)
    head = f"*What {code(report.database)} can be restored to*"
    if report.provider:
        head += f" (provider {esc(report.provider)})"
    lines = [_line(report.database, p, now) for p in report.points]
    notes: list[str] = []
    if report.provider is None:
        notes.append("No provider section: only the bot's own backups can be restored.")
    if report.provider_error:
        notes.append(f":warning: The provider did not answer: {esc(report.provider_error)}")
    if report.window is not None and not report.window.enabled:
        why = f": {esc(report.window.reason)}" if report.window.reason else ""
        notes.append(f":warning: No point-in-time recovery at the provider{why}.")
    if report.window is not None:
        notes += [esc(n) for n in report.window.notes]
    body = "\n".join(lines) or "Nothing to restore yet: no verified backup, no provider point."
    blocks = [section(head), section(body)]
    if notes:
        blocks.append(context("\n".join(notes)))
    text = f"What {report.database} can be restored to: {len(report.points)} point(s)."
    return Message(text, blocks)
