"""What escalation watches: conditions that are either true now or not.

Each feature that can go wrong (backups, drills, the checklist) provides a
`ConditionCheck`. The alert service asks every check for its current findings: a finding
with no open alert opens one; an open alert whose finding is gone resolves itself. This
pull model means an alert clears when the records say the problem is over (the next
backup succeeded), whoever fixed it and however.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from backupbot.phrases import Phrase

BACKUP_FAILED = "backup_failed"
STALE = "stale"
VERIFICATION_FAILED = "verification_failed"
DRILL_FAILED = "drill_failed"
DRILL_MISSING = "drill_missing"  # no passed drill within drill.max_age_days
CHECKLIST_OVERDUE = "checklist_overdue"
# the provider's point-in-time recovery is off, shorter than the runbook's, or unreadable
PROVIDER_RECOVERY = "provider_recovery"
CONDITIONS = (
    BACKUP_FAILED,
    STALE,
    VERIFICATION_FAILED,
    DRILL_FAILED,
    DRILL_MISSING,
    CHECKLIST_OVERDUE,
    PROVIDER_RECOVERY,
)


@dataclass(frozen=True)
class Finding:
    """One condition that holds now. `summary` is one or two sentences: what is wrong and
    what to do; `details` is JSON-safe evidence (ids, times), never secrets."""

    condition: str
    database: str | None
    summary: Phrase | str
    details: dict[str, Any] = field(default_factory=dict)


class ConditionCheck(Protocol):
    """Reports the findings of the conditions it owns that hold at `now`."""

    conditions: tuple[str, ...]

    def check(self, now: datetime) -> list[Finding]: ...
