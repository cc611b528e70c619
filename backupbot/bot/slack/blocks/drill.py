"""Block Kit for restore drills: the one channel message of a drill, in every state.

Pure functions from `DrillRecord` to `Message`. The message is posted when the drill
starts and updated in place with the stage it is in, then with Pass or Fail: per-stage
timings, the total against the RTO, the tables and rows verified, the backup and its age,
and what became of the scratch database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from backupbot.bot.slack.blocks.schema import schema_lines, schema_verdict
from backupbot.bot.slack.kit import (
    Block,
    Message,
    channel_link,
    clip,
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
from backupbot.commands.drill_model import STAGES, DrillStage
from backupbot.commands.drill_reminder import DrillReminder
from backupbot.phrases import Phrase
from backupbot.storage.drill_postponements import Postponement
from backupbot.storage.drills import PASSED, RUNNING, DrillRecord

MAX_MISMATCH_LINES = 8
REVIEW_ACTION = "drill_review"
REVIEW_BLOCK = "drill_review"

_STAGE_WORDS = {
    "queued": "starting",
    "download": "downloading the backup and checking its SHA-256",
    "create": "creating the scratch database",
    "restore": "running pg_restore",
    "verify": "counting rows in every table and comparing with the backup",
}


def _seconds(s: float | None) -> str:
    return humanize.duration(timedelta(seconds=s)) if s is not None else "?"


def _backup_line(r: DrillRecord) -> str:
    """The backup drilled and its age when the drill started."""
    b: dict[str, Any] = r.result.get("backup") or {}
    if not b:
        return "none verified"
    taken = datetime.fromisoformat(b["started_at"]) if b.get("started_at") else None
    when = f", taken {humanize.utc(taken)} ({humanize.age(taken, r.started_at)})" if taken else ""
    label = f", label {code(b['label'])}" if b.get("label") else ""
    return f"{code(b['id'])}{when}{label}, {humanize.size(b.get('stored_size'))}"


def _footer(r: DrillRecord) -> Block:
    scratch = r.result.get("scratch") or r.scratch_db
    cleanup = r.result.get("cleanup")
    state = f" ({esc(cleanup)})" if cleanup and r.status != RUNNING else ""
    return context(
        f"drill {code(r.id)} · started by {mention(r.actor)} at {humanize.utc(r.started_at)} · "
        f"scratch database {code(scratch)}{state}"
    )


def _review(r: DrillRecord) -> Block:
    """Who reviewed the finished drill's result, or the button to do it."""
    if r.reviewed_by:
        return context(
            f":eyes: Result reviewed by {mention(r.reviewed_by)} at {humanize.utc(r.reviewed_at)}"
        )
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Mark reviewed"},
        "action_id": REVIEW_ACTION,
        "value": r.id,
    }
    return {"type": "actions", "block_id": REVIEW_BLOCK, "elements": [button]}


def _timing_pairs(r: DrillRecord) -> list[tuple[str, str]]:
    timings = r.timings
    pairs = [(stage.capitalize(), _seconds(timings[stage])) for stage in STAGES if stage in timings]
    if r.total_seconds is not None:
        over = "" if r.within_rto else " — *over the RTO*"
        pairs.append(("Total vs RTO", f"{_seconds(r.total_seconds)} / {r.rto_minutes} min{over}"))
    elif r.result.get("total_seconds") is not None:  # the restore failed part-way
        stopped = _seconds(r.result["total_seconds"])
        pairs.append(("Stopped after", f"{stopped} (RTO {r.rto_minutes} min)"))
    return pairs


def drill_message(r: DrillRecord, now: datetime, progress: DrillStage | None = None) -> Message:
    """The channel message of a drill, in its current state."""
    backup = _backup_line(r)
    if r.status == RUNNING:
        stage = progress.stage if progress else "queued"
        done = progress.timings if progress else {}
        finished = " · ".join(f"{k} {_seconds(v)}" for k, v in done.items())
        blocks = [
            section(
                f":test_tube: *Restore drill of {code(r.database)} started* — restoring the latest "
                f"verified backup into a scratch database, verifying every table, timing it "
                f"against the RTO of {r.rto_minutes} min.\n*Backup:* {backup}"
            ),
            section(
                f":hourglass_flowing_sand: Now: {_STAGE_WORDS.get(stage, stage)}… "
                f"(running for {humanize.duration(now - r.started_at)})"
                + (f"\nDone: {finished}" if finished else "")
            ),
            _footer(r),
        ]
        return Message(f"Restore drill of {r.database} started…", blocks)
    pairs = [("Backup", backup), *_timing_pairs(r)]
    if r.status == PASSED:
        tables, rows = r.result.get("tables", 0), r.result.get("rows", 0)
        verified = f"{tables} table(s), {rows:,} row(s) match the backup"
        pairs.append(("Verified", verified + schema_verdict(r.result)))
        head = (
            f":white_check_mark: *Restore drill of {code(r.database)} passed* — restored and "
            f"verified in {_seconds(r.total_seconds)} (RTO {r.rto_minutes} min)."
        )
        text = (
            f"Restore drill of {r.database} passed: restored and verified {tables} tables in "
            f"{_seconds(r.total_seconds)} (RTO {r.rto_minutes} min)."
        )
        return Message(text, [section(head), fields(pairs[:10]), _review(r), _footer(r)])
    error = clip(render(r.error_phrase), 1500) if r.error else "The drill failed."
    failed = r.result.get("failed_stage")
    where = f" during {esc(failed)}" if failed and failed not in ("start", "verify") else ""
    head = f":x: *Restore drill of {code(r.database)} failed*{where}\n{error}"
    blocks = [section(head), fields(pairs[:10])]
    mismatches: list[dict[str, Any]] = r.result.get("mismatches") or []
    if mismatches:
        lines = ["*Tables that differ from the backup:*"]
        for m in mismatches[:MAX_MISMATCH_LINES]:
            actual = "missing" if m.get("actual") is None else f"{m['actual']:,}"
            lines.append(f"• {code(m['table'])}: {actual} row(s), backup has {m['expected']:,}")
        if len(mismatches) > MAX_MISMATCH_LINES:
            lines.append(f"…and {len(mismatches) - MAX_MISMATCH_LINES} more table(s)")
        blocks.append(section("\n".join(lines)))
    if schema_lines(r.result):
        blocks.append(section("\n".join(schema_lines(r.result))))
    blocks += [_review(r), _footer(r)]
    return Message(f"Restore drill of {r.database} failed: {error}", blocks)


def drill_reminder(reminder: DrillReminder, now: datetime) -> Message:
    """Posted `drill.remind_days_before` days before a scheduled drill."""
    when = humanize.utc(reminder.firing)
    hours = max(0, round((reminder.firing - now).total_seconds() / 3600))
    lines = [
        f":calendar: *Restore drill in {hours} h* ({when}): each database's latest verified "
        "backup is restored into a scratch database on its own server, every table's rows "
        "and the schema are checked, then it is dropped."
    ]
    for p in reminder.plans:
        backup = (
            f"backup {code(p.backup_id)} from {humanize.utc(p.backup_taken)}"
            if p.backup_id
            else ":warning: no verified backup yet, so this drill would fail"
        )
        expected = (
            f"expected {_seconds(p.expected_seconds)}" if p.expected_seconds else "never drilled"
        )
        lines.append(
            f"• {code(p.database)} on {code(p.server)}: {backup}; {expected} "
            f"(RTO {p.rto_minutes} min)"
        )
    lines.append(
        f"To postpone one: {code('/backup drill postpone DB 3d')} (1 to 14 days); to drill "
        f"it now instead: {code('/backup drill DB')}."
    )
    text = f"Restore drill on {when}: {', '.join(p.database for p in reminder.plans)}"
    return Message(text, [section("\n".join(lines))])


def drill_postponed(p: Postponement) -> Message:
    """The answer to `/backup drill postpone DB DAYS`."""
    return notice(
        f":calendar: The scheduled restore drill of {code(p.database)} at "
        f"{humanize.utc(p.firing_at)} now runs at {humanize.utc(p.run_at)}; recorded."
    )


def drill_ack(databases: Sequence[str], channel: str) -> Message:
    """The requester's answer to `/backup drill`: where the result will appear."""
    names = ", ".join(f"{code(d)}" for d in databases)
    several = "one after another, " if len(databases) > 1 else ""
    return notice(
        f"Starting a restore drill of {names}; {several}the progress and the Pass/Fail result "
        f"will appear in {channel_link(channel)}."
    )


def drill_refused(problem: Phrase | str) -> Message:
    return notice(f":warning: {render(problem)}")
