"""Item 2, retention policy enforced: retention ran on time and nothing past the policy
is still kept (except on purpose)."""

from __future__ import annotations

from datetime import datetime, timedelta

from backupbot.commands import humanize
from backupbot.commands.checklist_items.model import (
    LOOK,
    MAX_LISTED,
    OK,
    ChecklistEvidence,
    ChecklistPolicy,
    DatabasePolicy,
    ItemResult,
    db_name,
    short_day,
    with_more,
)
from backupbot.commands.retention_plan import keeps_label
from backupbot.phrases import Name, Phrase, join, say
from backupbot.storage.checklists import (
    BackupFact,
)


def _last_run(ev: ChecklistEvidence) -> tuple[bool, Phrase]:
    """Whether retention ran, succeeded and is not overdue, and the evidence line."""
    last = ev.last_retention_run
    if last is None:
        return False, say(f"{LOOK} Retention has never run: old backups are not being deleted.")
    at = humanize.utc(last.at)
    if last.outcome == "failed":
        why = last.details.get("error")
        return False, say(f"{LOOK} The last retention run ({at}) failed") + (
            say(": {why}", why=str(why)) if why else "."
        )
    if ev.retention_due_by is not None and last.at < ev.retention_due_by:
        due = humanize.utc(ev.retention_due_by)
        return False, say(
            f"{LOOK} The last retention run was {at}; the next one was due by {due} and has "
            "not happened."
        )
    return True, say(f"{OK} Last retention run: {at}.")


def _kept_too_long(
    ev: ChecklistEvidence, policy: ChecklistPolicy, db: DatabasePolicy, ref: datetime
) -> tuple[list[BackupFact], list[Phrase]]:
    """The database's kept backups past its retention, and why older ones are kept on
    purpose (the newest verified backup; a kept label within its own limit)."""
    mine = sorted(
        (b for b in ev.backups if b.deleted_at is None and b.database == db.name),
        key=lambda b: b.started_at,
    )
    newest = mine[-1].id if mine else None
    cutoff = ref - timedelta(days=db.retention_days)
    label_cutoff = ref - timedelta(days=policy.keep_labeled_days)
    overdue: list[BackupFact] = []
    on_purpose: list[Phrase] = []
    for b in (b for b in mine if b.started_at < cutoff):
        if b.id == newest:
            on_purpose.append(say("the newest verified backup"))
        elif keeps_label(b.label, policy.keep_labels) and b.started_at >= label_cutoff:
            on_purpose.append(say("label {label}", label=Name(b.label or "")))
        else:
            overdue.append(b)
    return overdue, on_purpose


def _database_line(
    db: DatabasePolicy, overdue: list[BackupFact], on_purpose: list[Phrase]
) -> Phrase:
    if overdue:
        listed = [
            say("{id} ({day})", id=Name(b.id), day=f"{b.started_at:%Y-%m-%d}")
            for b in overdue[:MAX_LISTED]
        ]
        return say(
            "{mark} {db}: {k} backup(s) older than {days} days are still kept: {listed}",
            mark=LOOK,
            db=db_name(db.name),
            k=len(overdue),
            days=db.retention_days,
            listed=join(with_more(listed, len(overdue))),
        )
    extra = say(" (kept on purpose: {why})", why=join(on_purpose)) if on_purpose else ""
    return say(
        "{mark} {db}: nothing older than {days} days{extra}",
        mark=OK,
        db=db_name(db.name),
        days=db.retention_days,
        extra=extra,
    )


def _summary(ev: ChecklistEvidence, run_ok: bool, overdue: dict[str, list[BackupFact]]) -> str:
    last = ev.last_retention_run
    if last is None:
        return "Retention has never run"
    if overdue:
        return f"{sum(len(v) for v in overdue.values())} backup(s) older than the policy"
    if last.outcome == "failed":
        return f"The last retention run ({short_day(last.at.date())}) failed"
    if not run_ok:
        return f"Retention has not run since {short_day(last.at.date())}"
    return f"Last run {humanize.utc(last.at)}; nothing past the policy"


def retention_item(ev: ChecklistEvidence, policy: ChecklistPolicy) -> ItemResult:
    last = ev.last_retention_run
    run_ok, run_line = _last_run(ev)
    lines = [run_line]
    ref = last.at if last is not None else ev.now
    overdue_by_db: dict[str, list[BackupFact]] = {}
    for db in policy.databases:
        overdue, on_purpose = _kept_too_long(ev, policy, db, ref)
        if overdue:
            overdue_by_db[db.name] = overdue
        lines.append(_database_line(db, overdue, on_purpose))
    return ItemResult(
        "retention",
        run_ok and not overdue_by_db,
        _summary(ev, run_ok, overdue_by_db),
        tuple(lines),
        {
            "last_run": last.at.isoformat() if last else None,
            "last_run_outcome": last.outcome if last else None,
            "due_by": ev.retention_due_by.isoformat() if ev.retention_due_by else None,
            "overdue": {k: [b.id for b in v] for k, v in overdue_by_db.items()},
        },
    )
