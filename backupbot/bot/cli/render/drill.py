"""`backupbot drill`: progress lines, the Pass/Fail report and its JSON."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from backupbot.bot.cli.render.phrase import render
from backupbot.bot.cli.render.schema import difference_lines, schema_json
from backupbot.commands import humanize
from backupbot.commands.drill_model import DrillStage
from backupbot.storage.drill_postponements import Postponement
from backupbot.storage.drills import DrillRecord


def progress_line(p: DrillStage) -> str:
    return f"[{p.drill_id}] {p.stage}"


def result_lines(record: DrillRecord, *, channel_told: bool | None) -> list[str]:
    """The verdict, backup, stage timings, total against the RTO, what was verified or
    the error, and the scratch database's clean-up. `channel_told` is None without Slack."""
    res = record.result
    verdict = "PASSED" if record.status == "passed" else "FAILED"
    lines = [f"restore drill {record.id} of {record.database}: {verdict}"]
    if res.get("backup"):
        lines.append(f"  backup: {res['backup']['id']}")
    timings = ", ".join(
        f"{stage} {humanize.duration(timedelta(seconds=sec))}"
        for stage, sec in (res.get("timings") or {}).items()
    )
    if timings:
        lines.append(f"  stages: {timings}")
    if record.total_seconds is not None:
        total = humanize.duration(timedelta(seconds=record.total_seconds))
        lines.append(f"  total: {total} (RTO {record.rto_minutes} min)")
    if record.status == "passed":
        schema = f"; schema {res['schema']}" if res.get("schema") else ""
        lines.append(f"  verified: {res.get('tables')} tables, {res.get('rows')} rows{schema}")
    else:
        lines.append(f"  error: {render(record.error_phrase)}")
        lines += difference_lines(res, "  ")
    lines.append(f"  scratch database {record.scratch_db}: {res.get('cleanup', '?')}")
    if channel_told is False:
        lines.append("  the channel could not be told (Slack unreachable)")
    return lines


def record_json(r: DrillRecord) -> dict[str, Any]:
    """A drill's facts for scripts: verdict, ids, timings in seconds, what was verified."""
    res = r.result
    backup = res.get("backup") or {}
    return {
        "id": r.id,
        "database": r.database,
        "status": r.status,
        "passed": r.status == "passed",
        "backup_id": r.backup_id or backup.get("id"),
        "restore_id": r.restore_id,
        "actor": r.actor,
        "started_at": r.started_at.isoformat(),
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "total_seconds": r.total_seconds,
        "rto_minutes": r.rto_minutes,
        "within_rto": res.get("within_rto"),
        "timings": res.get("timings") or {},
        "tables": res.get("tables"),
        "rows": res.get("rows"),
        **schema_json(res),
        "failed_stage": res.get("failed_stage"),
        "scratch_db": r.scratch_db,
        "scratch_dropped": r.scratch_dropped,
        "cleanup": res.get("cleanup"),
        "channel": r.channel,
        "message_ts": r.message_ts,
        "error": render(r.error_phrase) if r.error else None,
    }


def postponed_line(p: Postponement) -> str:
    return (
        f"The scheduled drill of {p.database} at {humanize.utc(p.firing_at)} now runs at "
        f"{humanize.utc(p.run_at)}; recorded."
    )


def postponement_json(p: Postponement) -> dict[str, Any]:
    return {
        "database": p.database,
        "firing_at": p.firing_at.isoformat(),
        "run_at": p.run_at.isoformat(),
        "requested_by": p.requested_by,
    }
