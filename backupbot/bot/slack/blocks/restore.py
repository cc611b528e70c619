"""Block Kit for restores: the request message in every state, thread notes, refusals.

Pure functions from `RestoreRecord` (plus its stored preview) to `Message`. The request
message keeps its body (what, from where, into where, what gets overwritten) in every
state; only the status section at the bottom changes, and the buttons exist only while
the request is pending.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from backupbot.bot.slack.blocks import provider_restore as provider_blocks
from backupbot.bot.slack.blocks import review as review_blocks
from backupbot.bot.slack.blocks.approvals import approvals_text
from backupbot.bot.slack.blocks.migrations import ahead_line, restore_lines
from backupbot.bot.slack.blocks.restore_tested import tested_lines
from backupbot.bot.slack.blocks.schema import schema_lines, schema_verdict
from backupbot.bot.slack.kit import (
    Block,
    Message,
    channel_link,
    code,
    context,
    esc,
    fields,
    mention,
    notice,
    render,
    section,
)
from backupbot.commands import humanize
from backupbot.commands.approvals import Refusal
from backupbot.commands.escalation_review import review_of
from backupbot.commands.restore_model import RestoreProgress
from backupbot.storage.restores import RestoreRecord

APPROVE_ACTION = "restore_approve"
DENY_ACTION = "restore_deny"
CANCEL_ACTION = "restore_cancel"
ACTIONS_BLOCK = "restore_actions"
MAX_TABLE_LINES = 8

_STAGE_WORDS = {
    "queued": "starting",
    "download": "downloading the backup and checking its SHA-256",
    "safety": "taking a safety backup of the target",
    "create": "creating the target database",
    "restore": "running pg_restore",
    "verify": "counting rows in every table and comparing with the backup",
}
_STAGE_DONE = {
    "download": "Downloaded and unpacked; SHA-256 matches the verified backup",
    "safety": "Safety backup of the target taken",
    "create": "Target database created",
    "restore": "pg_restore finished",
    "verify": "Row counts match the backup in every table",
    "provider": "The provider's restore finished",
}
_MODE_WORDS = {
    "new": "a new database",
    "into": "named with --into",
    "in_place": "the source itself (in place)",
    "drill": "a scratch database for a restore drill",
}


def _mode_words(r: RestoreRecord) -> str:
    if r.target_name:
        return f"the configured target {code(r.target_name)}, on another server"
    return _MODE_WORDS[r.mode]


def _seconds(s: float | None) -> str:
    return humanize.duration(timedelta(seconds=s)) if s is not None else "?"


def _when(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


def _title(r: RestoreRecord) -> str:
    glass = " (break-glass, no approval)" if r.break_glass else ""
    return (
        f":rewind: *Restore of {code(r.database)} into {code(r.target_db)}*{glass}\n"
        f"Requested by {mention(r.requester)}"
        + (f" — reason: _{esc(r.reason)}_" if r.reason else " — no reason given")
    )


def _backup_fields(r: RestoreRecord, now: datetime) -> Block:
    b: dict[str, Any] = r.preview.get("backup", {})
    taken = _when(b.get("started_at"))
    target: dict[str, Any] = r.preview.get("target", {})
    source: dict[str, Any] = r.preview.get("source", {})
    return fields(
        [
            (
                "Backup",
                f"{code(r.backup_id)}" + (f" · label {code(b['label'])}" if b.get("label") else ""),
            ),
            ("Taken", f"{humanize.utc(taken)} ({humanize.age(taken, now)})" if taken else "?"),
            ("Size", humanize.size(b.get("stored_size"))),
            (
                "SHA-256 verified",
                ("yes" if b.get("sha256_verified") else "no")
                + f" · `{(b.get('sha256') or '')[:12]}…`",
            ),
            ("Source", f"{code(source.get('where', '?'))}"),
            ("Target", f"{code(target.get('where', r.target_where))} ({_mode_words(r)})"),
        ]
    )


def _overwrite(r: RestoreRecord) -> Block:
    t: dict[str, Any] = r.preview.get("target", {})
    b: dict[str, Any] = r.preview.get("backup", {})
    lines: list[str] = tested_lines(r.preview.get("tested"), r.backup_id)
    if t.get("configured_as"):
        lines.append(
            f":rotating_light: The target is the configured database {code(t['configured_as'])}."
        )
    now_counts: dict[str, int] = t.get("row_counts") or {}
    backup_counts: dict[str, int] = b.get("row_counts") or {}
    if not t.get("exists"):
        lines.append(
            f"{code(r.target_db)} does not exist; it will be created. Nothing is overwritten."
        )
    elif not now_counts:
        lines.append(f"{code(r.target_db)} exists but has no tables; nothing is overwritten.")
    else:
        lines.append(
            f":warning: *Will be overwritten:* {code(r.target_db)}, "
            f"{humanize.size(t.get('size_bytes'))}, {len(now_counts)} table(s). "
            "Rows now → in the backup, largest tables:"
        )
        tables = sorted(
            set(now_counts) | set(backup_counts),
            key=lambda k: -max(now_counts.get(k, 0), backup_counts.get(k, 0)),
        )
        for name in tables[:MAX_TABLE_LINES]:
            now_n = now_counts.get(name)
            then = backup_counts.get(name)
            lines.append(
                f"• {code(name)} {'—' if now_n is None else f'{now_n:,}'} → "
                f"{'not in backup' if then is None else f'{then:,}'}"
            )
        if len(tables) > MAX_TABLE_LINES:
            lines.append(f"…and {len(tables) - MAX_TABLE_LINES} more table(s)")
    bp = (b.get("prisma") or {}).get("migration_name")
    tp = (t.get("prisma") or {}).get("migration_name")
    if bp or tp:
        same = " (same)" if bp == tp else ""
        lines.append(
            f"Prisma migration: backup {code(bp or 'none')} · target now {code(tp or 'none')}{same}"
        )
    if ahead := ahead_line(r.preview):
        lines.append(ahead)
    return section("\n".join(lines))


def _plan(r: RestoreRecord) -> str:
    t: dict[str, Any] = r.preview.get("target", {})
    steps = ["check the artifact's SHA-256"]
    if t.get("row_counts"):
        steps.append("safety backup of the target (label `pre-restore`)")
    elif not t.get("exists"):
        steps.append("create the target")
    steps.append("pg_restore" + (" --clean" if t.get("row_counts") else ""))
    tables = len((r.preview.get("backup") or {}).get("row_counts") or {})
    schema = " and the schema" if (r.preview.get("backup") or {}).get("schema_recorded") else ""
    steps.append(f"verify row counts of {tables} table(s){schema}")
    return "*Plan:* " + " → ".join(steps)


def _buttons(r: RestoreRecord) -> Block:
    def button(text: str, action: str, style: str | None, confirm: str | None) -> Block:
        b: Block = {
            "type": "button",
            "text": {"type": "plain_text", "text": text},
            "action_id": action,
            "value": r.id,
        }
        if style:
            b["style"] = style
        if confirm:
            b["confirm"] = {
                "title": {"type": "plain_text", "text": f"{text} this restore?"},
                "text": {"type": "mrkdwn", "text": confirm},
                "confirm": {"type": "plain_text", "text": text},
                "deny": {"type": "plain_text", "text": "Back"},
            }
        return b

    what = f"backup {code(r.backup_id)}"
    overwrite = (
        f"It overwrites {code(r.target_db)} after a safety backup."
        if (r.preview.get("target") or {}).get("row_counts")
        else f"It restores into {code(r.target_db)}."
    )
    if r.is_provider:
        what, overwrite = provider_blocks.confirm_words(r)
    return {
        "type": "actions",
        "block_id": ACTIONS_BLOCK,
        "elements": [
            button(
                "Approve",
                APPROVE_ACTION,
                "primary",
                f"Restore {what} of {code(r.database)} now. {overwrite}",
            ),
            button("Deny", DENY_ACTION, "danger", "The request is closed; nothing is restored."),
            button("Cancel", CANCEL_ACTION, None, None),
        ],
    }


def _status(r: RestoreRecord, progress: RestoreProgress | None) -> list[Block]:
    decided = ""
    if r.decided_by:
        decided = f"{mention(r.decided_by)} at {humanize.utc(r.decided_at)}"
    if r.status == "pending":
        tail = f"expires {humanize.utc(r.expires_at)} · request {code(r.id)}"
        approvals = approvals_text(r)
        if "\n" in approvals:  # stages: one line each
            return [
                section(f"*Needs approval:* {approvals}"),
                context(f"{tail[0].upper()}{tail[1:]} · the requester cannot approve"),
                _buttons(r),
            ]
        return [
            context(f"Needs approval: {approvals} · {tail} · the requester cannot approve"),
            _buttons(r),
        ]
    if r.status == "expired":
        return [
            section(
                f":hourglass: *Expired* at {humanize.utc(r.expires_at)} without "
                "approval. Nothing was restored."
            )
        ]
    if r.status == "denied":
        return [section(f":no_entry: *Denied* by {decided}. Nothing was restored.")]
    if r.status == "cancelled":
        return [
            section(f":leftwards_arrow_with_hook: *Cancelled* by {decided}. Nothing was restored.")
        ]
    who = "Break-glass run" if r.break_glass else f"Approved by {decided}"
    approvals = f" ({approvals_text(r)})" if r.required_approvals > 1 else ""
    if r.status == "running":
        stage = progress.stage if progress else (r.stage or "queued")
        return [
            section(
                f":hourglass_flowing_sand: {who}{approvals} — *restoring*: "
                f"{_STAGE_WORDS.get(stage, stage)}…"
            )
        ]
    res = r.result
    safety = (
        f" · safety backup {code(res['safety_backup_id'])}" if res.get("safety_backup_id") else ""
    )
    if r.status == "succeeded":
        return [
            section(
                f":white_check_mark: *Restored and verified* — {recovered_line(r)}\n"
                f"{who}{approvals}{safety}"
            )
        ]
    error = (r.error or "")[:1500]  # the target's state must never be clipped away
    return [
        section(
            f":x: *Restore failed* during {esc(res.get('failed_stage', '?'))}\n"
            f"*Target:* {esc(res.get('target_state', 'unknown'))}\n"
            f"{who}{approvals}{safety}\n{esc(error)}"
        )
    ]


def recovered_line(r: RestoreRecord) -> str:
    res = r.result
    total = res.get("total_seconds")
    rto = res.get("rto_minutes") or r.preview.get("rto_minutes")
    verdict = "" if res.get("within_rto", True) else " — *over the target*"
    return f"Recovered in {_seconds(total)} (RTO target {rto} min){verdict}"


def restore_message(
    r: RestoreRecord, now: datetime, progress: RestoreProgress | None = None
) -> Message:
    """The channel message of a restore request, in its current state."""
    if r.is_provider:  # a point or snapshot through the provider (`provider_restore.py`)
        shown = provider_blocks.status(r, progress)
        blocks = [*provider_blocks.body(r), *(shown or _status(r, progress))]
    else:
        blocks = [
            section(_title(r)),
            _backup_fields(r, now),
            _overwrite(r),
            section(_plan(r)),
            *_status(r, progress),
        ]
    text = {
        "pending": f"Restore of {r.database} into {r.target_db} requested by {r.requester}; "
        "waiting for approval.",
        "running": f"Restore of {r.database} into {r.target_db} running.",
        "succeeded": f"Restore of {r.database} into {r.target_db} succeeded.",
        "failed": f"Restore of {r.database} into {r.target_db} failed: {r.error}",
    }.get(r.status, f"Restore of {r.database} into {r.target_db}: {r.status}.")
    return Message(text, blocks)


def stage_note(stage: str, seconds: float, safety_backup_id: str | None = None) -> Message:
    """A thread reply when a stage finishes."""
    words = _STAGE_DONE.get(stage, stage)
    if stage == "safety" and safety_backup_id:
        words += f": backup {code(safety_backup_id)}"
    text = f"{words} ({_seconds(seconds)})."
    return Message(text, [section(f":heavy_check_mark: {text}")])


def restore_report(r: RestoreRecord) -> Message:
    """The thread reply with the result: stage timings against the RTO, or the failure."""
    if r.is_provider:
        return provider_blocks.report(r)
    res = r.result
    timings: dict[str, float] = res.get("timings") or {}
    pairs = [(stage.capitalize(), _seconds(sec)) for stage, sec in timings.items()]
    pairs.append(("Total", _seconds(res.get("total_seconds"))))
    if r.status == "succeeded":
        head = (
            f":white_check_mark: *{recovered_line(r)}.* {res.get('tables', 0)} table(s), "
            f"{res.get('rows', 0):,} row(s) match the backup{schema_verdict(res)}."
        )
        extra = res.get("extra_tables") or []
        tail = (
            [
                context(
                    f"Tables in the target that are not in the backup (left as they were): "
                    f"{', '.join(map(code, extra[:20]))}"
                )
            ]
            if extra
            else []
        )
        if prisma := restore_lines(res):
            tail.append(section("\n".join(prisma)))
        text = f"{recovered_line(r)}; {res.get('tables', 0)} tables verified."
    else:
        head = f":x: *Restore failed* during {esc(res.get('failed_stage', '?'))}: {esc(r.error)}"
        lines = [f"*Target:* {esc(res.get('target_state', 'unknown'))}"]
        if res.get("safety_backup_id"):
            lines.append(
                f"*Safety backup:* {code(res['safety_backup_id'])} holds the target's state "
                "before the restore."
            )
        for m in (res.get("mismatches") or [])[:MAX_TABLE_LINES]:
            actual = "missing" if m.get("actual") is None else f"{m['actual']:,}"
            lines.append(f"• {code(m['table'])}: {actual} row(s), backup has {m['expected']:,}")
        hidden = len(res.get("mismatches") or []) - MAX_TABLE_LINES
        if hidden > 0:
            lines.append(f"…and {hidden} more table(s)")
        lines += schema_lines(res)
        tail = [section("\n".join(lines))]
        text = f"Restore failed: {r.error} Target: {res.get('target_state')}."
    return Message(text, [section(head), fields(pairs), *tail])


def refused(refusal: Refusal) -> Message:
    return notice(f":no_entry_sign: {render(refusal.message)}")


def requested_ack(r: RestoreRecord, channel: str) -> Message:
    return notice(
        f"Restore request {code(r.id)} posted in {channel_link(channel)}: it needs "
        f"{r.required_approvals} approval(s) from someone other than you before "
        f"{humanize.utc(r.expires_at)}."
    )


def break_glass_notice(r: RestoreRecord, review_due: datetime | None = None) -> Message:
    """Posted when Slack is reachable again after a CLI break-glass restore; with
    `review_due`, it asks for (or shows) the approver's review (`blocks/review.py`)."""
    m = restore_message(r, r.finished_at or r.created_at)
    head = section(
        f":rotating_light: *Break-glass restore* run from the command line by "
        f"{mention(r.requester)} at {humanize.utc(r.started_at)}, without approval."
    )
    review: list[Block] = []
    if review_due is not None:
        review = review_blocks.review_blocks(r, review_of(r), review_due)
    return Message("Break-glass restore: " + m.text, [head, *m.blocks, *review])
