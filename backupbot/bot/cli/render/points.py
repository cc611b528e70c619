"""`backupbot points DB`: the provider's window and snapshots and the bot's verified
backups, one line each with how to restore it; and the same as JSON."""

from __future__ import annotations

from typing import Any

from backupbot.bot.cli.render.phrase import cli_command
from backupbot.commands import humanize
from backupbot.commands.provider_points import Point, PointsReport


def _line(db: str, p: Point) -> str:
    ask = cli_command("restore", "request", db, *p.args)
    if p.kind == "window":
        until = humanize.utc(p.until) if p.until else "now"
        return f"any moment {humanize.utc(p.at)} to {until} (provider PITR): {ask}"
    what = "provider snapshot" if p.kind == "snapshot" else "bot backup, verified"
    label = f", {p.label}" if p.label else ""
    size = f", {humanize.size(p.size_bytes)}" if p.size_bytes else ""
    return f"{p.ident} {humanize.utc(p.at)} {what}{label}{size}: {ask}"


def points_lines(report: PointsReport) -> list[str]:
    head = f"{report.database} can be restored to" + (
        f" (provider {report.provider}):" if report.provider else ":"
    )
    lines = [head, *(f"  {_line(report.database, p)}" for p in report.points)]
    if not report.points:
        lines.append("  nothing yet: no verified backup, no provider point")
    if report.provider is None:
        lines.append("no provider section: only the bot's own backups can be restored")
    if report.provider_error:
        lines.append(f"warning: the provider did not answer: {report.provider_error}")
    if report.window is not None and not report.window.enabled:
        lines.append(f"warning: no point-in-time recovery at the provider: {report.window.reason}")
    return lines


def points_json(report: PointsReport) -> dict[str, Any]:
    return {
        "database": report.database,
        "provider": report.provider,
        "provider_error": report.provider_error,
        "points": [
            {
                "kind": p.kind,
                "id": p.ident,
                "at": p.at.isoformat() if p.at else None,
                "until": p.until.isoformat() if p.until else None,
                "label": p.label,
                "size_bytes": p.size_bytes,
                "restore": ["restore", "request", report.database, *p.args],
            }
            for p in report.points
        ],
    }
