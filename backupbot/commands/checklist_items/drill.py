"""Item 3, test restore completed: a passed drill within the RTO for every database."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from backupbot.commands import humanize
from backupbot.commands.checklist_items.model import (
    LOOK,
    OK,
    ChecklistEvidence,
    ChecklistPolicy,
    ItemResult,
    db_name,
    message_link,
)
from backupbot.phrases import Actor, Command, MessageLink, Phrase, say
from backupbot.storage.checklists import (
    DrillFact,
)


def drill_link(d: DrillFact) -> str | None:
    return message_link(d.channel, d.message_ts) if d.channel and d.message_ts else None


def message_ref(d: DrillFact, words: str) -> Phrase | str:
    """` · ` and a link to the drill's message, when it has one."""
    if not (d.channel and d.message_ts):
        return ""
    link = MessageLink(words, d.channel, d.message_ts, message_link(d.channel, d.message_ts))
    return say(" · {link}", link=link)


def _latest_first(ev: ChecklistEvidence, database: str, since: datetime) -> list[DrillFact]:
    """The database's finished drills since `since`, newest first."""
    return sorted(
        (
            d
            for d in ev.drills
            if d.database == database and d.status != "running" and d.started_at >= since
        ),
        key=lambda d: d.started_at,
        reverse=True,
    )


def _verdict(database: str, finished: list[DrillFact]) -> tuple[bool, Phrase]:
    """Whether the newest drill passed within its RTO, and the evidence line."""
    d = finished[0]
    ref = message_ref(d, "drill message")
    seconds = d.total_seconds
    took = humanize.duration(timedelta(seconds=seconds)) if seconds is not None else "?"
    over_rto = (
        d.rto_minutes is not None
        and d.total_seconds is not None
        and d.total_seconds > d.rto_minutes * 60
    )
    facts = {"db": db_name(database), "at": humanize.utc(d.started_at), "took": took, "ref": ref}
    if d.status == "passed" and not over_rto:
        rto = f" (RTO {d.rto_minutes} min)" if d.rto_minutes else ""
        who = say(", reviewed by {who}", who=Actor(d.reviewed_by)) if d.reviewed_by else ""
        return True, say(
            "{mark} {db}: drill passed {at} in {took}{rto}{who}{ref}",
            mark=OK,
            rto=rto,
            who=who,
            **facts,
        )
    if d.status == "passed":
        template = "{mark} {db}: drill passed {at} but took {took}, over the RTO of {rto} min{ref}"
        return False, say(template, mark=LOOK, rto=d.rto_minutes or 0, **facts)
    earlier = next((x for x in finished[1:] if x.status == "passed"), None)
    before = f" (an earlier drill passed {humanize.utc(earlier.started_at)})" if earlier else ""
    why = say(": {error}", error=d.error_phrase) if d.error else ""
    template = "{mark} {db}: the latest drill ({at}) failed{why}{before}{ref}"
    return False, say(template, mark=LOOK, why=why, before=before, **facts)


def _details(d: DrillFact) -> dict[str, Any]:
    return {
        "drill_id": d.id,
        "status": d.status,
        "at": d.started_at.isoformat(),
        "total_seconds": d.total_seconds,
        "link": drill_link(d),
    }


def drill_item(ev: ChecklistEvidence, policy: ChecklistPolicy, since: datetime) -> ItemResult:
    lines: list[Phrase] = []
    details: dict[str, dict[str, Any] | None] = {}
    missing: list[str] = []
    failing: list[str] = []
    for db in policy.databases:
        finished = _latest_first(ev, db.name, since)
        if not finished:
            missing.append(db.name)
            details[db.name] = None
            lines.append(
                say(
                    "{mark} {db}: no restore drill since {since}; run {cmd}",
                    mark=LOOK,
                    db=db_name(db.name),
                    since=f"{since:%Y-%m-%d}",
                    cmd=Command("drill", db.name),
                )
            )
            continue
        ok, line = _verdict(db.name, finished)
        lines.append(line)
        details[db.name] = _details(finished[0])
        if not ok:
            failing.append(db.name)
    if missing or failing:
        parts = ([f"no drill: {', '.join(missing)}"] if missing else []) + (
            [f"failed or slow: {', '.join(failing)}"] if failing else []
        )
        summary = "; ".join(parts)
        summary = summary[:1].upper() + summary[1:]
    else:
        summary = f"Drill passed for {len(policy.databases)} database(s)"
    return ItemResult(
        "drill",
        not (missing or failing),
        summary,
        tuple(lines),
        {"since": since.isoformat(), "drills": details},
    )
