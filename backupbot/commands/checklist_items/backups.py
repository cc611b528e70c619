"""Item 1, automated backups running: a verified backup on each day of the window."""

from __future__ import annotations

from datetime import UTC, date

from backupbot.commands.checklist_items.model import (
    LOOK,
    OK,
    ChecklistEvidence,
    ChecklistPolicy,
    ItemResult,
    compact_days,
    db_name,
    review_days,
)
from backupbot.phrases import Phrase, say


def backups_item(ev: ChecklistEvidence, policy: ChecklistPolicy) -> ItemResult:
    days = review_days(ev.now, policy.lookback_days)
    n = len(days)
    lines: list[Phrase] = []
    missing_by_db: dict[str, list[date]] = {}
    for db in policy.databases:
        covered = {b.started_at.astimezone(UTC).date() for b in ev.backups if b.database == db.name}
        missing = [d for d in days if d not in covered]
        if missing:
            missing_by_db[db.name] = missing
            lines.append(
                say(
                    "{mark} {db}: a verified backup on {k} of the last {n} days; none on {days}",
                    mark=LOOK,
                    db=db_name(db.name),
                    k=n - len(missing),
                    n=n,
                    days=compact_days(missing),
                )
            )
        else:
            lines.append(
                say(
                    "{mark} {db}: a verified backup on each of the last {n} days",
                    mark=OK,
                    db=db_name(db.name),
                    n=n,
                )
            )
    if missing_by_db:
        summary = "Days without a backup: " + ", ".join(
            f"{name} {len(m)}" for name, m in missing_by_db.items()
        )
    else:
        summary = f"A verified backup every day for {len(policy.databases)} database(s)"
    return ItemResult(
        "backups",
        not missing_by_db,
        summary,
        tuple(lines),
        {
            "days": n,
            "first_day": days[0].isoformat() if days else None,
            "missing": {k: [d.isoformat() for d in v] for k, v in missing_by_db.items()},
        },
    )
