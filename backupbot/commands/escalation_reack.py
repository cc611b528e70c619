"""The acknowledgement timeout (PagerDuty's): an acknowledged alert still failing
`escalation.reack_after_minutes` after the acknowledgement loses it.

`lapse` clears the acknowledgement with one guarded update (it must still be the one
seen, so with two processes ticking the alert pages once), records the lapse in the
alert's `details`, and restarts the escalation path at the current level: the levels
after it are due again from now on, spaced as configured (`delay`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from backupbot.commands.escalation_types import Repage
from backupbot.settings import EscalationLevel
from backupbot.storage.alerts import AlertRecord, AlertStore

DELAY_KEY = "escalation_delay_seconds"  # in `details`: how far re-pages moved the levels
REACK_KEY = "reack"  # in `details`: the last lapse (count, at, who had acknowledged)


def delay(alert: AlertRecord) -> timedelta:
    """How far the re-pages of `alert` pushed its levels back."""
    return timedelta(seconds=float(alert.details.get(DELAY_KEY) or 0))


def lapse(
    store: AlertStore,
    levels: Sequence[EscalationLevel],
    alert: AlertRecord,
    reack_after: timedelta,
    now: datetime,
) -> Repage | None:
    """The re-page of `alert` if its acknowledgement is at least `reack_after` old (it
    is taken away now); None when it is not, or another process (or a click) got there
    first."""
    by, at = alert.acknowledged_by, alert.acknowledged_at
    if by is None or at is None or not alert.posted or at + reack_after > now:
        return None
    current = alert.levels_fired - 1 if alert.levels_fired > 0 else None
    base = alert.opened_at + timedelta(minutes=levels[current or 0].after_minutes)
    previous = alert.details.get(REACK_KEY) or {}
    details = {
        **alert.details,
        DELAY_KEY: max(delay(alert), now - base).total_seconds(),
        REACK_KEY: {
            "count": int(previous.get("count", 0)) + 1,
            "at": now.isoformat(),
            "acknowledged_by": by,
            "acknowledged_at": at.isoformat(),
        },
    }
    if not store.lapse(alert.id, by, at, details):
        return None  # acknowledged again, resolved, or another process has it
    level = levels[current] if current is not None else None
    mention = level.mention if level else []
    return Repage(
        alert=store.get(alert.id),
        acknowledged_by=by,
        acknowledged_at=at,
        minutes=int((now - at).total_seconds() // 60),
        level_name=level.name if level else None,
        users=tuple(dict.fromkeys([by, *(m for m in mention if m[:1] in "UW")])),
        groups=tuple(m for m in mention if m[:1] == "S"),
    )
