"""Item 2, retention policy enforced: retention ran on time and nothing past the policy
is still kept (except on purpose)."""

from __future__ import annotations

from datetime import timedelta

from backupbot.commands import humanize
from backupbot.commands.checklist_items.model import (
    LOOK,
    MAX_LISTED,
    OK,
    ChecklistEvidence,
    ChecklistPolicy,
    ItemResult,
    db_name,
    short_day,
    with_more,
)
from backupbot.commands.retention import keeps_label
from backupbot.phrases import Name, Phrase, join, say
from backupbot.storage.checklists import (
    BackupFact,
)


def retention_item(ev: ChecklistEvidence, policy: ChecklistPolicy) -> ItemResult:
    last = ev.last_retention_run
    lines: list[Phrase] = []
    run_ok = True
    if last is None:
        run_ok = False
        lines.append(say(f"{LOOK} Retention has never run: old backups are not being deleted."))
    elif last.outcome == "failed":
        run_ok = False
        why = last.details.get("error")
        lines.append(
            say(f"{LOOK} The last retention run ({humanize.utc(last.at)}) failed")
            + (say(": {why}", why=str(why)) if why else ".")
        )
    elif ev.retention_due_by is not None and last.at < ev.retention_due_by:
        run_ok = False
        lines.append(
            say(
                f"{LOOK} The last retention run was {humanize.utc(last.at)}; the next one was "
                f"due by {humanize.utc(ev.retention_due_by)} and has not happened."
            )
        )
    else:
        lines.append(say(f"{OK} Last retention run: {humanize.utc(last.at)}."))
    ref = last.at if last is not None else ev.now
    kept = [b for b in ev.backups if b.deleted_at is None]
    overdue_by_db: dict[str, list[BackupFact]] = {}
    for db in policy.databases:
        mine = sorted((b for b in kept if b.database == db.name), key=lambda b: b.started_at)
        newest = mine[-1].id if mine else None
        cutoff = ref - timedelta(days=db.retention_days)
        label_cutoff = ref - timedelta(days=policy.keep_labeled_days)
        overdue: list[BackupFact] = []
        on_purpose: list[Phrase] = []
        for b in mine:
            if b.started_at >= cutoff:
                continue
            if b.id == newest:
                on_purpose.append(say("the newest verified backup"))
            elif keeps_label(b.label, policy.keep_labels) and b.started_at >= label_cutoff:
                on_purpose.append(say("label {label}", label=Name(b.label or "")))
            else:
                overdue.append(b)
        if overdue:
            overdue_by_db[db.name] = overdue
            listed = [
                say("{id} ({day})", id=Name(b.id), day=f"{b.started_at:%Y-%m-%d}")
                for b in overdue[:MAX_LISTED]
            ]
            lines.append(
                say(
                    "{mark} {db}: {k} backup(s) older than {days} days are still kept: {listed}",
                    mark=LOOK,
                    db=db_name(db.name),
                    k=len(overdue),
                    days=db.retention_days,
                    listed=join(with_more(listed, len(overdue))),
                )
            )
        else:
            extra = say(" (kept on purpose: {why})", why=join(on_purpose)) if on_purpose else ""
            lines.append(
                say(
                    "{mark} {db}: nothing older than {days} days{extra}",
                    mark=OK,
                    db=db_name(db.name),
                    days=db.retention_days,
                    extra=extra,
                )
            )
    ok = run_ok and not overdue_by_db
    if last is None:
        summary = "Retention has never run"
    elif overdue_by_db:
        count = sum(len(v) for v in overdue_by_db.values())
        summary = f"{count} backup(s) older than the policy"
    elif last.outcome == "failed":
        summary = f"The last retention run ({short_day(last.at.date())}) failed"
    elif not run_ok:
        summary = f"Retention has not run since {short_day(last.at.date())}"
    else:
        summary = f"Last run {humanize.utc(last.at)}; nothing past the policy"
    return ItemResult(
        "retention",
        ok,
        summary,
        tuple(lines),
        {
            "last_run": last.at.isoformat() if last else None,
            "last_run_outcome": last.outcome if last else None,
            "due_by": ev.retention_due_by.isoformat() if ev.retention_due_by else None,
            "overdue": {k: [b.id for b in v] for k, v in overdue_by_db.items()},
        },
    )
