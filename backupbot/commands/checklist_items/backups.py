"""Item 1, automated backups running: a verified backup on each day of the window, and,
for a database with a provider section, the provider's own recovery (point-in-time
recovery on, its window against the runbook's 30 days)."""

from __future__ import annotations

from datetime import UTC, date, datetime

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
from backupbot.commands.provider_facts import ProviderFacts
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
    recovery = {f.database: f for f in ev.recovery}
    provider_gaps = [name for name, f in recovery.items() if f.warnings]
    for f in recovery.values():
        lines.extend(_recovery_lines(f, ev.now))
    if missing_by_db:
        summary = "Days without a backup: " + ", ".join(
            f"{name} {len(m)}" for name, m in missing_by_db.items()
        )
    else:
        summary = f"A verified backup every day for {len(policy.databases)} database(s)"
    if provider_gaps:
        summary += "; provider recovery needs a look: " + ", ".join(provider_gaps)
    return ItemResult(
        "backups",
        not missing_by_db and not provider_gaps,
        summary,
        tuple(lines),
        {
            "days": n,
            "first_day": days[0].isoformat() if days else None,
            "missing": {k: [d.isoformat() for d in v] for k, v in missing_by_db.items()},
            "provider": {k: f.as_json() for k, f in recovery.items()},
        },
    )


def _recovery_lines(facts: ProviderFacts, now: datetime) -> list[Phrase]:
    """The provider's recovery line, then each of its warnings."""
    warnings = facts.warnings
    head = say(
        "{mark} {db}: {line}",
        mark=LOOK if warnings else OK,
        db=db_name(facts.database),
        line=facts.line(now),
    )
    return [
        head,
        *(say("{mark} {db}: {w}", mark=LOOK, db=db_name(facts.database), w=w) for w in warnings),
    ]
