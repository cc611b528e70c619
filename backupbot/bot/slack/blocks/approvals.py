"""Block Kit for approval stages: how far a restore request's approvals are, and the
reminder posted in its thread as expiry nears. Pure functions of the request."""

from __future__ import annotations

from backupbot.bot.slack.kit import Message, code, context, esc, mention, mention_any, section
from backupbot.commands import humanize
from backupbot.commands.approval_stages import ALL, StageProgress, stages_of
from backupbot.commands.approval_stages import progress as approval_progress
from backupbot.commands.restore_decisions import Reminder
from backupbot.storage.restores import RestoreRecord


def approvals_text(r: RestoreRecord) -> str:
    """How far the approvals are: `1 of 2 (@bob)` for one stage; with stages, one line
    each naming who approved and who can still approve."""
    parts = approval_progress(stages_of(r.policy, r.required_approvals), r.approvals)
    if len(parts) == 1 and parts[0].stage.need != ALL:
        given = ", ".join(mention(u) for u in r.approvers) or "none yet"
        return f"{r.approval_count} of {r.required_approvals} ({given})"
    lines = [f"{r.approval_count} of {r.required_approvals}, in stages:"]
    for i, p in enumerate(parts, 1):
        mark = ":white_check_mark:" if p.done else (":arrow_forward:" if p.current else "·")
        need = f"all {p.stage.needed}" if p.stage.need == ALL else str(p.stage.needed)
        given = ", ".join(mention(u) for u in p.approved_by) or "none yet"
        line = f"{mark} {i}. {esc(p.stage.name)}: {len(p.approved_by)} of {need} ({given})"
        if not p.done:
            line += " · can approve: " + _who(p, r)
        lines.append(line)
    return "\n".join(lines)


def _who(p: StageProgress, r: RestoreRecord) -> str:
    left = [a for a in p.waiting_on if a not in r.approvers and a != r.requester]
    return ", ".join(mention_any(a) for a in left) or "nobody left"


def reminder(rem: Reminder) -> Message:
    """The thread reminder: time left, and who can approve now (mentioned, so they are
    notified)."""
    r = rem.record
    parts = approval_progress(stages_of(r.policy, r.required_approvals), r.approvals)
    current = next((p for p in parts if p.current), None)
    who = _who(current, r) if current is not None else "nobody left"
    stage = f" ({esc(current.stage.name)} stage)" if current is not None and len(parts) > 1 else ""
    text = (
        f":bell: *Still waiting for approval* of restore {code(r.id)}: it expires in "
        f"{rem.minutes_left} min, at {humanize.utc(r.expires_at)}. "
        f"Can approve now{stage}: {who}."
    )
    return Message(
        f"Restore {r.id} still waiting for approval: expires in {rem.minutes_left} min",
        [section(text), context(f"Approvals so far: {approvals_text(r)}")],
    )
