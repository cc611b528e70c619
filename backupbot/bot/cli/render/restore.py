"""`backupbot restore request` and `restore run`: progress, result lines and JSON."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from backupbot.bot.cli.render.phrase import cli_command
from backupbot.bot.cli.render.schema import difference_lines, schema_json
from backupbot.commands import humanize
from backupbot.commands.restore_model import RestoreProgress
from backupbot.storage.restores import RestoreRecord


def progress_line(p: RestoreProgress) -> str:
    return f"[{p.restore_id}] {p.stage}"


def request_posted(record: RestoreRecord) -> str:
    """A request posted in Slack: where, what, and what it waits for."""
    into = f"target {record.target_name} ({record.target_where})" if record.target_name else ""
    what = f"backup {record.backup_id}"
    if record.is_provider:
        point = record.snapshot_id or humanize.utc(record.point_at)
        what = f"through {record.provider} to {point}"
        into = "in place" if record.provider_into == "in_place" else f"new {record.target_db}"
    lines = [
        f"restore request {record.id} posted in {record.channel}: {record.database} {what} "
        f"into {into or record.target_db}; needs "
        f"{record.required_approvals} approval(s) before {humanize.utc(record.expires_at)}"
    ]
    tested = record.preview.get("tested")
    if tested is not None:
        lines.append(tested_line(tested, record.backup_id))
    if ahead := record.preview.get("prisma_ahead"):
        lines.append(
            "warning: the target's Prisma migrations are ahead of the backup's: "
            f"{', '.join(ahead)} applied on the target, not in the backup"
        )
    return "\n".join(lines)


def tested_line(tested: dict[str, Any], backup_id: str) -> str:
    """When the backup a protected in-place request restores was last test-restored."""

    def how(fact: dict[str, Any]) -> str:
        where = "in a restore drill" if fact["how"] == "drill" else f"on {fact['target']}"
        return f"{where} on {humanize.utc(datetime.fromisoformat(fact['at']))}"

    if same := tested.get("backup"):
        return f"backup {backup_id} was restored and verified {how(same)}"
    other = tested.get("any")
    last = (
        f"the last tested backup is {other['backup_id']}, {how(other)}"
        if other
        else "no backup of this database has been test-restored yet"
    )
    return f"warning: backup {backup_id} has never been restored in staging or a drill; {last}"


def run_result(record: RestoreRecord, *, announced: bool) -> list[str]:
    """A break-glass restore's outcome, its safety backup, and whether Slack knows yet."""
    res = record.result
    if record.status == "succeeded":
        took = humanize.duration(timedelta(seconds=res.get("total_seconds") or 0))
        lines = [
            f"restore {record.id}: {record.database} backup {record.backup_id} restored into "
            f"{record.target_db} and verified ({res.get('tables')} tables) in {took} "
            f"(RTO target {res.get('rto_minutes')} min)"
        ]
    else:
        lines = [
            f"restore {record.id} failed: {record.error}",
            f"target: {res.get('target_state')}",
            *difference_lines(res),
        ]
    if res.get("safety_backup_id"):
        lines.append(f"safety backup: {res['safety_backup_id']}")
    if prisma := res.get("prisma"):
        lines.append(
            f"prisma head: {prisma.get('before') or 'none'} -> {prisma.get('after') or 'none'}"
        )
        if prisma.get("lacks"):
            lines.append(f"warning: the restored database lacks {', '.join(prisma['lacks'])}")
    if not announced:
        lines.append(
            f"Slack was not told yet; {cli_command('serve')} posts the notice when it can."
        )
    return lines


def record_json(r: RestoreRecord, *, announced: bool | None = None) -> dict[str, Any]:
    """A restore's facts for scripts: ids, target, state, numbers; `announced` when the
    CLI knows whether the channel was told."""
    res = r.result
    data: dict[str, Any] = {
        "id": r.id,
        "database": r.database,
        "backup_id": r.backup_id,
        "mode": r.mode,
        "target_db": r.target_db,
        "target": r.target_name,
        "tested": r.preview.get("tested"),
        "status": r.status,
        "requester": r.requester,
        "reason": r.reason,
        "break_glass": r.break_glass,
        "required_approvals": r.required_approvals,
        "approvals": r.approvers,
        "created_at": r.created_at.isoformat(),
        "expires_at": r.expires_at.isoformat(),
        "channel": r.channel,
        "message_ts": r.message_ts,
        "started_at": r.started_at.isoformat() if r.started_at else None,
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "safety_backup_id": r.safety_backup_id or res.get("safety_backup_id"),
        "tables": res.get("tables"),
        "rows": res.get("rows"),
        "total_seconds": res.get("total_seconds"),
        "rto_minutes": res.get("rto_minutes"),
        "within_rto": res.get("within_rto"),
        "timings": res.get("timings"),
        "source": r.source_kind,
        "provider": r.provider,
        "point_at": r.point_at.isoformat() if r.point_at else None,
        "snapshot_id": r.snapshot_id,
        "operation_id": r.operation_id,
        "result_name": r.result_name,
        "result_host": r.result_host,
        "target_state": res.get("target_state"),
        **schema_json(res),
        "prisma": res.get("prisma"),
        "error": r.error,
    }
    if announced is not None:
        data["announced"] = announced
    return data
