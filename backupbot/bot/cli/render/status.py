"""`backupbot status`: per database and for the bot, as text lines or JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backupbot.bot.cli.render.backup import record_json
from backupbot.bot.cli.render.phrase import render
from backupbot.bot.sparkline import trend_lines
from backupbot.commands import humanize
from backupbot.commands.rto_record import rto_phrase, trend_text
from backupbot.commands.status import AlertSummary, BotStatus, ChecklistSummary, DatabaseStatus


def status_lines(report: Sequence[DatabaseStatus], overall: BotStatus) -> list[str]:
    """Each database's block, then the month's checklist and the bot's own alerts."""
    lines = [line for s in report for line in database_lines(s)]
    lines.append(checklist_line(overall.checklist))
    lines.extend(alert_line(a) for a in overall.alerts)
    return lines


def database_lines(s: DatabaseStatus) -> list[str]:
    lines = [f"{s.name} ({s.provider}): {'OK' if s.healthy else 'NEEDS ATTENTION'}"]
    ok = s.last_success
    if ok:
        lines.append(
            f"  last good backup: {humanize.age(ok.started_at, s.now)} "
            f"({humanize.utc(ok.started_at)}), {humanize.size(ok.stored_size)}, "
            f"took {humanize.duration(ok.duration)}, id {ok.id}"
        )
    else:
        lines.append("  last good backup: never")
    if f := s.last_failure:
        lines.append(f"  last failure: {humanize.age(f.started_at, s.now)}, id {f.id}: {f.error}")
    lines.append(f"  backups kept: {s.kept}")
    if s.recovery:
        lines.append(f"  {render(s.recovery.line(s.now))}")
    if s.running:
        lines.append(f"  running now: id {s.running.id}, started by {s.running.actor}")
    lines.append(f"  next scheduled backup: {s.next_backup_text}")
    lines.append(f"  {render(rto_phrase(s.rto))}")
    if trend := trend_text(s.rto):
        lines.append(f"  RTO trend (last 6 drills): {trend}")
    if s.trend:
        sizes, times = trend_lines(s.trend)
        lines += [f"  size trend: {sizes}", f"  duration trend: {times}"]
    lines.extend(f"  ! {render(w)}" for w in s.warnings)
    lines.extend("  " + alert_line(a) for a in s.alerts)
    return lines


def alert_line(a: AlertSummary) -> str:
    owner = f"acknowledged by {a.acknowledged_by}" if a.acknowledged_by else "unacknowledged"
    return f"ALERT {a.condition}: {render(a.summary)} ({owner})"


def checklist_line(c: ChecklistSummary | None) -> str:
    if c is None:
        return "checklist: not posted yet this month"
    if c.signed_off_by:
        when = humanize.utc(c.signed_off_at)
        return f"checklist {c.period}: signed off by {c.signed_off_by} on {when}"
    return f"checklist {c.period}: NOT signed off ({c.ticked} of {c.items} ticked)"


def status_json(s: DatabaseStatus) -> dict[str, Any]:
    """One database's status as facts; warnings as plain CLI text."""
    return {
        "database": s.name,
        "provider": s.provider,
        "healthy": s.healthy,
        "warnings": [render(w) for w in s.warnings],
        "backups_kept": s.kept,
        "last_success": record_json(s.last_success),
        "last_failure": record_json(s.last_failure),
        "running": record_json(s.running),
        "next_scheduled_backup": s.next_backup.isoformat() if s.next_backup else None,
        "rto": s.rto.as_json(),
        "trend": {"stored_sizes": s.trend.sizes, "durations_seconds": s.trend.durations},
        "alerts": [alert_json(a) for a in s.alerts],
        "provider_recovery": s.recovery.as_json() if s.recovery else None,
    }


def alert_json(a: AlertSummary) -> dict[str, Any]:
    return {
        "id": a.id,
        "condition": a.condition,
        "database": a.database,
        "summary": render(a.summary),
        "opened_at": a.opened_at.isoformat(),
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": a.acknowledged_at.isoformat() if a.acknowledged_at else None,
    }
