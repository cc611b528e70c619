"""Item 4, backup size trending correctly: no day-over-day drop or jump past the ratios."""

from __future__ import annotations

from datetime import UTC, date, datetime
from itertools import pairwise

from backupbot.commands import humanize
from backupbot.commands.checklist_items.model import (
    LOOK,
    MAX_LISTED,
    OK,
    TIMES,
    ChecklistEvidence,
    ChecklistPolicy,
    ItemResult,
    db_name,
    short_day,
    with_more,
)
from backupbot.phrases import Phrase, join, say
from backupbot.storage.checklists import (
    BackupFact,
)

_Jump = tuple[date, int, int, float]  # day, size the day before, size that day, ratio


def _daily_sizes(ev: ChecklistEvidence, database: str, since: datetime) -> list[tuple[date, int]]:
    """The stored size of each day's newest verified backup, oldest day first."""
    newest_of_day: dict[date, BackupFact] = {}
    for b in ev.backups:
        if b.database != database or b.stored_size is None or b.started_at < since:
            continue
        day = b.started_at.astimezone(UTC).date()
        if day not in newest_of_day or b.started_at > newest_of_day[day].started_at:
            newest_of_day[day] = b
    return [(d, int(newest_of_day[d].stored_size or 0)) for d in sorted(newest_of_day)]


def _jumps(sizes: list[tuple[date, int]], policy: ChecklistPolicy) -> list[_Jump]:
    """Day-over-day changes past the drop or jump ratio."""
    found = []
    for (_pd, prev), (day, cur) in pairwise(sizes):
        if prev > 0:
            ratio = cur / prev
            if ratio < policy.size_drop_ratio or ratio > policy.size_jump_ratio:
                found.append((day, prev, cur, ratio))
    return found


def _jump_phrase(jump: _Jump, policy: ChecklistPolicy) -> Phrase:
    d, p, c, r = jump
    past = (
        f"a drop below {policy.size_drop_ratio:g}{TIMES}"
        if r < policy.size_drop_ratio
        else f"a jump above {policy.size_jump_ratio:g}{TIMES}"
    )
    return say(f"{short_day(d)}: {humanize.size(p)} → {humanize.size(c)} ({r:.2f}{TIMES}, {past})")


def size_item(ev: ChecklistEvidence, policy: ChecklistPolicy, since: datetime) -> ItemResult:
    lines: list[Phrase] = []
    details = {}
    bad: list[str] = []
    for db in policy.databases:
        sizes = _daily_sizes(ev, db.name, since)
        if len(sizes) < 2:
            lines.append(
                say(
                    "{mark} {db}: fewer than two days with a verified backup; nothing to compare",
                    mark=OK,
                    db=db_name(db.name),
                )
            )
            details[db.name] = {"days": len(sizes), "offending": []}
            continue
        offending = _jumps(sizes, policy)
        first, last = sizes[0][1], sizes[-1][1]
        low, high = min(s for _d, s in sizes), max(s for _d, s in sizes)
        trend = (
            f"{humanize.size(first)} → {humanize.size(last)} over {len(sizes)} days "
            f"(smallest {humanize.size(low)}, largest {humanize.size(high)})"
        )
        details[db.name] = {
            "days": len(sizes),
            "first": first,
            "last": last,
            "offending": [
                {"day": d.isoformat(), "from": p, "to": c, "ratio": round(r, 3)}
                for d, p, c, r in offending
            ],
        }
        if not offending:
            lines.append(say("{mark} {db}: {trend}", mark=OK, db=db_name(db.name), trend=trend))
            continue
        bad.append(db.name)
        shown = [_jump_phrase(j, policy) for j in offending[:MAX_LISTED]]
        lines.append(
            say("{mark} {db}: {trend}; ", mark=LOOK, db=db_name(db.name), trend=trend)
            + join(with_more(shown, len(offending)), "; ")
        )
    summary = (
        f"Size drop or jump: {', '.join(bad)}"
        if bad
        else f"No drop below {policy.size_drop_ratio:g}{TIMES} or jump above "
        f"{policy.size_jump_ratio:g}{TIMES} day over day"
    )
    return ItemResult("size", not bad, summary, tuple(lines), {"databases": details})
