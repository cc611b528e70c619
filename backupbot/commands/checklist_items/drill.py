"""Item 3, test restore completed: for every database, a passed drill within the RTO
(shown as the runbook's RTO record: target, tested, result, duration, reviewer, trend),
or a staging restore noted by hand (`/backup note app staging-restore ...`) that a second
person confirmed. The newer of the two decides: a drill that failed after the staging
restore still needs a look. A staging restore nobody has confirmed yet does not count;
it shows as a warning."""

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
from backupbot.phrases import Actor, Command, MessageLink, Phrase, say
from backupbot.storage.checklists import (
    DrillFact,
)
from backupbot.storage.operation_notes import OperationNote


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


def _staging_first(ev: ChecklistEvidence, database: str, since: datetime) -> list[OperationNote]:
    """The database's staging-restore notes since `since`, newest first."""
    found = (n for n in ev.staging_restores if n.database == database and n.created_at >= since)
    return sorted(found, key=lambda n: n.created_at, reverse=True)


def _note_ref(n: OperationNote) -> Phrase | str:
    if not (n.channel and n.message_ts):
        return ""
    url = message_link(n.channel, n.message_ts)
    return say(" · {link}", link=MessageLink("note", n.channel, n.message_ts, url))


def _confirmed_line(database: str, n: OperationNote) -> Phrase:
    return say(
        "{mark} {db}: staging restore noted by {author}, confirmed by {confirmer} ({at}){ref}",
        mark=OK,
        db=db_name(database),
        author=Actor(n.author),
        confirmer=Actor(n.confirmed_by or "?"),
        at=humanize.utc(n.created_at),
        ref=_note_ref(n),
    )


def _pending_line(database: str, n: OperationNote) -> Phrase:
    return say(
        "{mark} {db}: staging restore noted by {author} ({at}), not yet confirmed by a "
        "second person, so it does not count yet{ref}",
        mark=LOOK,
        db=db_name(database),
        author=Actor(n.author),
        at=humanize.utc(n.created_at),
        ref=_note_ref(n),
    )


def _note_details(n: OperationNote) -> dict[str, Any]:
    link = message_link(n.channel, n.message_ts) if n.channel and n.message_ts else None
    return {
        "note_id": n.id,
        "status": "confirmed" if n.confirmed_by else "unconfirmed",
        "at": n.created_at.isoformat(),
        "author": n.author,
        "confirmed_by": n.confirmed_by,
        "link": link,
    }


def _database_verdict(
    ev: ChecklistEvidence, db: DatabasePolicy, since: datetime
) -> tuple[bool | None, list[Phrase], dict[str, Any] | None]:
    """Whether the database's newest evidence passes (None: there is none), its lines
    and its details."""
    database = db.name
    finished = _latest_first(ev, database, since)
    notes = _staging_first(ev, database, since)
    confirmed = next((n for n in notes if n.confirmed_by), None)
    pending = notes[0] if notes and not notes[0].confirmed_by else None
    lines: list[Phrase] = []
    ok: bool | None = None
    details: dict[str, Any] | None = None
    if confirmed and (not finished or confirmed.created_at >= finished[0].started_at):
        ok, details = True, _note_details(confirmed)
        lines.append(_confirmed_line(database, confirmed))
    elif finished:
        record = _record(ev, db, finished)
        ok, line = _verdict(database, finished, record)
        details = {**_details(finished[0]), "rto": record.as_json()}
        lines.append(line)
    if pending is not None:
        lines.append(_pending_line(database, pending))
        details = details or _note_details(pending)
    return ok, lines, details


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
    by_verdict: dict[str, list[str]] = {"missing": [], "unconfirmed": [], "failing": []}
    for db in policy.databases:
        ok, found, details[db.name] = _database_verdict(ev, db, since)
        if ok is None and found:  # only a staging restore nobody confirmed yet
            by_verdict["unconfirmed"].append(db.name)
        elif ok is None:
            by_verdict["missing"].append(db.name)
            record = _record(ev, db, [])
            found = [
                say(
                    "{mark} {db}: no restore drill since {since}; run {cmd} · {record}{trend}",
                    mark=LOOK,
                    db=db_name(db.name),
                    since=f"{since:%Y-%m-%d}",
                    cmd=Command("drill", db.name),
                    record=rto_phrase(record),
                    trend=_trend(record),
                )
            ]
        elif not ok:
            by_verdict["failing"].append(db.name)
        lines.extend(found)
    return ItemResult(
        "drill",
        not any(by_verdict.values()),
        _summary(by_verdict, details, len(policy.databases)),
        tuple(lines),
        {"since": since.isoformat(), "drills": details},
    )


_SUMMARY_WORDS = {
    "missing": "no drill",
    "unconfirmed": "staging restore not confirmed",
    "failing": "failed or slow",
}


def _summary(
    by_verdict: dict[str, list[str]], details: dict[str, dict[str, Any] | None], count: int
) -> str:
    parts = [f"{_SUMMARY_WORDS[k]}: {', '.join(dbs)}" for k, dbs in by_verdict.items() if dbs]
    if parts:
        summary = "; ".join(parts)
        return summary[:1].upper() + summary[1:]
    noted = sum(1 for d in details.values() if d and d.get("note_id"))
    if noted:
        return f"Test restore done for {count} database(s), {noted} by a confirmed staging restore"
    return f"Drill passed for {count} database(s)"
