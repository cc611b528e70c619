"""Item 5, no corruption warnings: no checksum, archive, row-count or schema verification
failure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backupbot.commands import humanize
from backupbot.commands.checklist_items.drill import message_ref
from backupbot.commands.checklist_items.model import (
    LOOK,
    MAX_LISTED,
    OK,
    VERIFICATION_ERROR_TYPES,
    VERIFICATION_STAGES,
    ChecklistEvidence,
    ItemResult,
    db_name,
    short_day,
    with_more,
)
from backupbot.phrases import Name, Phrase, say
from backupbot.storage.checklists import (
    DrillFact,
    IncidentFact,
)


@dataclass(frozen=True)
class _Event:
    at: datetime
    database: str | None
    what: Phrase  # "backup 1a2b3c4d", "restore r0a1b2c3", "drill d1a2b3c4"
    detail: str
    ref: Phrase | str = ""


def _incident_event(i: IncidentFact) -> tuple[str, _Event] | None:
    error_type = i.details.get("error_type")
    restore_id = i.details.get("restore_id")
    if i.action == "backup.failed" and error_type == "VerificationFailed":
        detail = str(i.details.get("error") or "verification of the stored copy failed")
        return f"backup:{i.backup_id or i.id}", _Event(
            i.at, i.database, say("backup {id}", id=Name(str(i.backup_id))), detail
        )
    if i.action == "restore.verified" and i.outcome == "failed":
        detail = _verified_detail(i.details)
        return f"restore:{restore_id or i.id}", _Event(
            i.at, i.database, say("restore {id}", id=Name(str(restore_id))), detail
        )
    if i.action == "restore.failed" and error_type in VERIFICATION_ERROR_TYPES:
        detail = str(i.details.get("error") or "verification failed")
        return f"restore:{restore_id or i.id}", _Event(
            i.at, i.database, say("restore {id}", id=Name(str(restore_id))), detail
        )
    return None


def _verified_detail(details: dict[str, Any]) -> str:
    """What a failed `restore.verified` found: tables whose rows differ, schema objects."""
    found = []
    if details.get("mismatches"):
        found.append(f"row counts differ from the backup in {len(details['mismatches'])} table(s)")
    schema = details.get("schema_differences") or []
    if schema:
        total = int(details.get("schema_differences_total") or len(schema))
        found.append(f"the schema differs in {total} place(s) ({schema[0].get('text', '')})")
    return "; ".join(found) or "verification failed"


def _drill_verification_failed(d: DrillFact) -> bool:
    return d.status == "failed" and (
        (d.failed_stage or "") in VERIFICATION_STAGES
        or (d.error_type or "") in VERIFICATION_ERROR_TYPES
    )


def corruption_item(ev: ChecklistEvidence, since: datetime) -> ItemResult:
    events: dict[str, _Event] = {}
    for i in ev.incidents:
        if i.at < since:
            continue
        found = _incident_event(i)
        if found is not None and found[0] not in events:
            events[found[0]] = found[1]
    for d in ev.drills:
        if d.started_at < since or not _drill_verification_failed(d):
            continue
        key = f"restore:{d.restore_id}" if d.restore_id else f"drill:{d.id}"
        detail = d.error or "the drill's verification failed"
        what = say("drill {id}", id=Name(d.id))
        events[key] = _Event(d.started_at, d.database, what, detail, message_ref(d, "message"))
    ordered = sorted(events.values(), key=lambda e: e.at)
    if not ordered:
        line = say(
            "{mark} No checksum, {list}, row-count or schema verification failures since {since}.",
            mark=OK,
            list=Name("pg_restore --list"),
            since=f"{since:%Y-%m-%d}",
        )
        return ItemResult(
            "corruption",
            True,
            f"No verification failures since {short_day(since.date())}",
            (line,),
            {"events": []},
        )
    shown = []
    for e in ordered[:MAX_LISTED]:
        where = say(" {db}", db=db_name(e.database)) if e.database else ""
        shown.append(
            say(
                "{mark} {at}{where} {what}: {detail}{ref}",
                mark=LOOK,
                at=humanize.utc(e.at),
                where=where,
                what=e.what,
                detail=e.detail,
                ref=e.ref,
            )
        )
    return ItemResult(
        "corruption",
        False,
        f"{len(ordered)} verification failure(s) since {short_day(since.date())}",
        tuple(with_more(shown, len(ordered))),
        {
            "events": [
                {"at": e.at.isoformat(), "database": e.database, "what": str(e.what)}
                for e in ordered
            ]
        },
    )
