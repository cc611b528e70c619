"""Item 3, test restore completed: a passed drill within the RTO for every database, shown
as the runbook's RTO record (target, tested, result, duration, reviewer, trend)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backupbot.commands import humanize
from backupbot.commands.checklist_items.model import (
    LOOK,
    OK,
    ChecklistEvidence,
    ChecklistPolicy,
    DatabasePolicy,
    ItemResult,
    db_name,
    message_link,
)
from backupbot.commands.rto_record import PASS, RtoLine, rto_line, rto_phrase, took, trend_text
from backupbot.phrases import Command, MessageLink, Phrase, say
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


def _record(ev: ChecklistEvidence, db: DatabasePolicy, finished: list[DrillFact]) -> RtoLine:
    """The database's RTO line, its trend from its last drills whatever their age."""
    mine = [d for d in ev.recent_drills if d.database == db.name]
    return rto_line(db.name, db.rto_minutes, {d.id: d for d in (*mine, *finished)}.values())


def _trend(line: RtoLine) -> str:
    return f"; trend {trend_text(line)}" if len(line.trend) > 1 else ""


def _verdict(database: str, finished: list[DrillFact], line: RtoLine) -> tuple[bool, Phrase]:
    """Whether the newest drill passed within its RTO, and the evidence line: the RTO
    record, why it needs a look, a link to the drill's message and the trend."""
    d = finished[0]
    facts = {
        "db": db_name(database),
        "record": rto_phrase(line),
        "ref": message_ref(d, "drill message"),
        "trend": _trend(line),
    }
    if line.result == PASS:
        return True, say("{mark} {db}: {record}{ref}{trend}", mark=OK, **facts)
    if d.status == "passed":
        why = say(
            " (took {took}, over the RTO of {rto} min)",
            took=took(d.total_seconds),
            rto=d.rto_minutes or 0,
        )
    else:
        earlier = next((x for x in finished[1:] if x.status == "passed"), None)
        before = f"; an earlier drill passed {humanize.utc(earlier.started_at)}" if earlier else ""
        error = say(": {error}", error=d.error_phrase) if d.error else ""
        why = say(
            " (the drill of {at} failed{error}{before})",
            at=humanize.utc(d.started_at),
            error=error,
            before=before,
        )
    return False, say("{mark} {db}: {record}{why}{ref}{trend}", mark=LOOK, why=why, **facts)


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
            record = _record(ev, db, [])
            lines.append(
                say(
                    "{mark} {db}: no restore drill since {since}; run {cmd} · {record}{trend}",
                    mark=LOOK,
                    db=db_name(db.name),
                    since=f"{since:%Y-%m-%d}",
                    cmd=Command("drill", db.name),
                    record=rto_phrase(record),
                    trend=_trend(record),
                )
            )
            continue
        record = _record(ev, db, finished)
        ok, verdict = _verdict(db.name, finished, record)
        lines.append(verdict)
        details[db.name] = {**_details(finished[0]), "rto": record.as_json()}
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
