"""Block Kit for restores through a provider (`--to` / `--snapshot`): the request's body
(provider, window, the exact point, what happens to the current state, the estimate,
how the result is verified), its running/succeeded/failed status and the thread report.
Pending, denied, cancelled and expired look like any restore request (`restore.py`).

Everything the provider supplied (names, hosts, ids, details) is escaped."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from backupbot.bot.slack.blocks.approvals import approvals_text
from backupbot.bot.slack.kit import Block, Message, code, context, esc, fields, mention, section
from backupbot.commands import humanize
from backupbot.commands.restore_model import RestoreProgress
from backupbot.storage.restores import RestoreRecord

MAX_TABLE_LINES = 8
_STAGE_WORDS = {
    "queued": "starting",
    "starting": "starting",
    "safety": "taking the bot's own safety backup first",
    "provider": "the provider is restoring",
    "verify": "connecting to the result and counting rows in every table",
}


def _when(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


def _p(r: RestoreRecord) -> dict[str, Any]:
    provider: dict[str, Any] = r.preview.get("provider") or {}
    return provider


def provider_name(r: RestoreRecord) -> str:
    return esc((r.provider or "provider").capitalize())


def point_text(r: RestoreRecord) -> str:
    """The exact point: the UTC moment (and in --tz), or the snapshot."""
    p = _p(r)
    snap: dict[str, Any] | None = p.get("snapshot")
    if snap:
        name = f" ({esc(snap['name'])})" if snap.get("name") else ""
        return f"snapshot {code(snap['id'])}{name}, taken {humanize.utc(_when(snap['created_at']))}"
    local = f"\n= {esc(p['point_local'])}" if p.get("point_local") else ""
    return f"{code(humanize.utc(_when(p.get('point'))))}{local}"


def confirm_words(r: RestoreRecord) -> tuple[str, str]:
    """What the Approve button's confirmation says is restored, and what it does."""
    state = esc((_p(r).get("current_state") or "").capitalize())
    point = point_text(r).replace("\n", " ")
    return f"through {provider_name(r)} to {point}", f"{state}."


def window_text(window: dict[str, Any]) -> str:
    if not window.get("enabled"):
        return "no point-in-time recovery" + (
            f": {esc(window['reason'])}" if window.get("reason") else ""
        )
    days = window.get("retention_days")
    keep = f" (keeps {days:g} days)" if isinstance(days, int | float) else ""
    return (
        f"{humanize.utc(_when(window.get('earliest')))} → "
        f"{humanize.utc(_when(window.get('latest')))}{keep}"
    )


def _into(r: RestoreRecord) -> str:
    if r.provider_into == "in_place":
        return f"in place: {code(r.database)} itself"
    return f"new: {code(r.target_db)}"


def body(r: RestoreRecord) -> list[Block]:
    p = _p(r)
    reason = f" — reason: _{esc(r.reason)}_" if r.reason else " — no reason given"
    title = (
        f":rewind: *Restore of {code(r.database)} through {provider_name(r)}*\n"
        f"Requested by {mention(r.requester)}{reason}"
    )
    minutes = p.get("estimated_minutes")
    pairs = [
        ("Provider", provider_name(r)),
        ("Point", point_text(r)),
        ("Recovery window", window_text(p.get("window") or {})),
        ("Into", _into(r)),
        ("Estimated time", f"about {minutes:g} min" if minutes else "unknown"),
        ("Source", code((r.preview.get("source") or {}).get("where", "?"))),
    ]
    state = f"*Current state:* {esc(p.get('current_state') or '?')}"
    if p.get("needs_safety_dump"):
        state = (
            f":warning: *Will be overwritten:* {code(r.database)}. The bot takes its own "
            f"safety backup (label `pre-restore`) before the provider restores.\n{state}"
        )
    manifest: dict[str, Any] = r.preview.get("manifest") or {}
    if manifest:
        check = (
            f"*Afterwards:* the bot connects to the result and compares row counts with "
            f"backup {code(manifest['backup_id'])} ({humanize.utc(_when(manifest['started_at']))}"
            "), the newest verified backup before the point."
        )
    else:
        check = (
            "*Afterwards:* the bot connects to the result and counts rows; no verified "
            "backup from before the point exists to compare with."
        )
    return [section(title), fields(pairs), section(state), section(check)]


def _result_target(r: RestoreRecord) -> str:
    res = r.result
    name, host = res.get("result_name") or r.result_name, res.get("result_host") or r.result_host
    parts = [code(name) if name else None, f"host {code(host)}" if host else None]
    return " on ".join(x for x in parts if x) or "?"


def status(r: RestoreRecord, progress: RestoreProgress | None) -> list[Block] | None:
    """The running/succeeded/failed status; None for the states every request shares."""
    if r.status not in ("running", "succeeded", "failed"):
        return None
    decided = f"{mention(r.decided_by)} at {humanize.utc(r.decided_at)}" if r.decided_by else ""
    approvals = f" ({approvals_text(r)})" if r.required_approvals > 1 else ""
    who = f"Approved by {decided}{approvals}"
    res = r.result
    if r.status == "running":
        stage = progress.stage if progress else (r.stage or "queued")
        detail = f" — {esc(progress.detail)}" if progress and progress.detail else ""
        op = f"\nOperation {code(r.operation_id)}" if r.operation_id else ""
        return [
            section(
                f":hourglass_flowing_sand: {who} — *restoring*: "
                f"{_STAGE_WORDS.get(stage, esc(stage))}{detail}…{op}"
            )
        ]
    safety = (
        f" · safety backup {code(res['safety_backup_id'])}" if res.get("safety_backup_id") else ""
    )
    if r.status == "succeeded":
        return [
            section(
                f":white_check_mark: *Restored by {provider_name(r)} and verified* in "
                f"{_seconds(res.get('total_seconds'))}\n*Connect to:* {_result_target(r)}\n"
                f"{who}{safety}"
            )
        ]
    return [
        section(
            f":x: *Provider restore failed* during {esc(res.get('failed_stage', '?'))}\n"
            f"*State:* {esc(res.get('target_state', 'unknown'))}\n"
            f"{who}{safety}\n{esc((r.error or '')[:1500])}"
        )
    ]


def _seconds(s: float | None) -> str:
    return humanize.duration(timedelta(seconds=s)) if s is not None else "?"


def report(r: RestoreRecord) -> Message:
    """The thread reply with the result: the connection target and the row counts."""
    res = r.result
    timings: dict[str, float] = res.get("timings") or {}
    pairs = [(stage.capitalize(), _seconds(sec)) for stage, sec in timings.items()]
    pairs.append(("Total", _seconds(res.get("total_seconds"))))
    if r.operation_id or res.get("operation_id"):
        pairs.append(("Operation", code(res.get("operation_id") or r.operation_id)))
    if r.status != "succeeded":
        head = f":x: *Provider restore failed* during {esc(res.get('failed_stage', '?'))}: "
        head += esc(r.error)
        lines = [f"*State:* {esc(res.get('target_state', 'unknown'))}"]
        if res.get("safety_backup_id"):
            lines.append(
                f"*Safety backup:* {code(res['safety_backup_id'])} holds {code(r.database)} "
                "as it was before."
            )
        text = f"Provider restore failed: {r.error} State: {res.get('target_state')}."
        return Message(text, [section(head), fields(pairs), section("\n".join(lines))])
    head = (
        f":white_check_mark: *Restored by {provider_name(r)}:* {res.get('tables', 0)} "
        f"table(s), {res.get('rows', 0):,} row(s). *Connect to:* {_result_target(r)}."
    )
    lines = [_comparison(res)]
    for d in (res.get("differing") or [])[:MAX_TABLE_LINES]:
        lines.append(f"• {code(d['table'])}: {d['actual']:,} now, {d['expected']:,} in the backup")
    text = (
        f"Restored by {r.provider}: {res.get('tables', 0)} tables, {res.get('rows', 0)} rows; "
        f"connect to {res.get('result_name')} on {res.get('result_host')}."
    )
    return Message(text, [section(head), fields(pairs), context("\n".join(lines))])


def _comparison(res: dict[str, Any]) -> str:
    backup = res.get("compared_with")
    if not backup:
        return "No verified backup from before the point to compare with: counts only."
    differing = res.get("differing") or []
    at = humanize.utc(_when(res.get("compared_with_at")))
    if not differing:
        return f"Row counts match backup {code(backup)} ({at}) in every table."
    return (
        f"{res.get('matching_tables', 0)} table(s) match backup {code(backup)} ({at}); "
        f"{len(differing)} differ (rows written between that backup and the point):"
    )
