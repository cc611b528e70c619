"""The App Home tab: every database's standing at a glance, from `/backup status`'s facts,
with buttons for the common actions. Within Block Kit's 100-block limit for a view: the
first `DETAILED` databases get a section each (fields, a "Back up now" button, their
warnings and alerts), the rest one line each in a compact list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backupbot.bot.slack.blocks.status import alert_line, checklist_line
from backupbot.bot.slack.kit import (
    MAX_SECTION_TEXT,
    Block,
    clip,
    code,
    context,
    esc,
    fields,
    mention,
    render,
    section,
)
from backupbot.bot.sparkline import trend_lines
from backupbot.commands import humanize
from backupbot.commands.rto_record import rto_phrase
from backupbot.commands.status import BotStatus, DatabaseStatus
from backupbot.phrases import Phrase

MAX_VIEW_BLOCKS = 100
DETAILED = 20  # databases shown in full; the rest one line each
BACKUP_NOW_ACTION = "home_backup_now"
RESTORE_ACTION = "home_restore"
CHECKLIST_ACTION = "home_checklist"


@dataclass(frozen=True)
class HomeOptions:
    """What the viewer may do, and what the view links to or tells them."""

    can_back_up: bool = False
    can_request_restore: bool = False
    checklist_url: str | None = None
    notice: Phrase | str | None = None  # the answer to their last click


def _button(text: str, action_id: str, value: str, **extra: Any) -> Block:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
        **extra,
    }


def _last_good(s: DatabaseStatus) -> str:
    ok = s.last_success
    if ok is None:
        return "never"
    return (
        f"{humanize.age(ok.started_at, s.now)} ({humanize.utc(ok.started_at)}), "
        f"{humanize.size(ok.stored_size)}, id {code(ok.id)}"
    )


def _alerts_text(s: DatabaseStatus) -> str:
    if not s.alerts:
        return "none"
    acked = sum(1 for a in s.alerts if a.acknowledged_by)
    return f"{len(s.alerts)} open, {acked} acknowledged"


def _database_blocks(s: DatabaseStatus, index: int, options: HomeOptions) -> list[Block]:
    icon = ":white_check_mark:" if s.healthy else ":warning:"
    head = section(f"{icon} *{esc(s.name)}*")
    head["block_id"] = f"home_db_{index}"
    if options.can_back_up:
        head["accessory"] = _button("Back up now", BACKUP_NOW_ACTION, s.name)
    pairs = [
        ("Last good backup", _last_good(s)),
        ("Next scheduled backup", esc(s.next_backup_text)),
        ("Last drill and RTO", render(rto_phrase(s.rto))),
        ("Open alerts", _alerts_text(s)),
    ]
    if s.running:
        pairs.append(
            (
                "Running now",
                f"id {code(s.running.id)} since {humanize.age(s.running.started_at, s.now)} "
                f"by {mention(s.running.actor)}",
            )
        )
    if s.trend:
        sizes, times = trend_lines(s.trend)
        pairs.append(("Size and duration trend", f"{esc(sizes)}\n{esc(times)}"))
    blocks = [head, fields(pairs)]
    notes = [f":warning: {render(w)}" for w in s.warnings] + [
        alert_line(a, s.now) for a in s.alerts
    ]
    if notes:
        blocks.append(context("\n".join(notes)))
    return blocks


def _compact_line(s: DatabaseStatus) -> str:
    icon = ":white_check_mark:" if s.healthy else ":warning:"
    ok = s.last_success
    last = f"last good {humanize.age(ok.started_at, s.now)}" if ok else "no good backup"
    alerts = f" · {len(s.alerts)} open alert(s)" if s.alerts else ""
    return clip(f"{icon} {code(s.name)} · {last} · next {esc(s.next_backup_text)}{alerts}", 400)


def _compact_blocks(rest: Sequence[DatabaseStatus], room: int) -> list[Block]:
    """The remaining databases one line each, in sections of up to 3000 characters, in at
    most `room` blocks (the last says how many more there are, when they do not fit)."""
    chunks: list[list[str]] = [[]]
    for line in map(_compact_line, rest):
        if sum(len(c) + 1 for c in chunks[-1]) + len(line) > MAX_SECTION_TEXT - 100:
            chunks.append([])
        chunks[-1].append(line)
    blocks = [section("\n".join(c)) for c in chunks if c]
    if len(blocks) <= room:
        return blocks
    shown = sum(len(c) for c in chunks[: room - 1])
    more = context(f"{len(rest) - shown} more database(s); ask for one: `/backup status DB`.")
    return [*blocks[: room - 1], more]


def _actions(options: HomeOptions) -> list[Block]:
    elements = []
    if options.can_request_restore:
        elements.append(_button("Request a restore", RESTORE_ACTION, "restore"))
    if options.checklist_url:
        elements.append(
            _button("Open the checklist", CHECKLIST_ACTION, "checklist", url=options.checklist_url)
        )
    return (
        [{"type": "actions", "block_id": "home_actions", "elements": elements}] if elements else []
    )


def home_view(
    statuses: Sequence[DatabaseStatus], overall: BotStatus, options: HomeOptions
) -> dict[str, Any]:
    """The Home tab view for one viewer (`views.publish`)."""
    worrying = [s.name for s in statuses if not s.healthy]
    summary = (
        f"{len(worrying)} of {len(statuses)} database(s) need attention."
        if worrying
        else f"All {len(statuses)} database(s) have a recent verified backup."
    )
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Backups at a glance"}},
        section(summary),
    ]
    if options.notice is not None:
        blocks.append(section(render(options.notice)))
    if statuses:
        now = statuses[0].now
        lines = [checklist_line(overall.checklist, now)]
        lines += [alert_line(a, now) for a in overall.alerts]
        blocks.append(context("\n".join(lines)))
    blocks += _actions(options)
    for i, s in enumerate(statuses[:DETAILED]):
        blocks += _database_blocks(s, i, options)
    rest = statuses[DETAILED:]
    if rest:
        blocks.append(context(f"*{len(rest)} more database(s)*, one line each:"))
        blocks += _compact_blocks(rest, MAX_VIEW_BLOCKS - len(blocks))
    return {"type": "home", "blocks": blocks}
