"""The monthly checklist as an escalation condition: `CHECKLIST_OVERDUE` while the
current checklist lies unsigned too long."""

from __future__ import annotations

from datetime import datetime

from backupbot.commands.checklist import ChecklistService
from backupbot.commands.checklist_rules import ITEM_KEYS, message_link
from backupbot.commands.conditions import CHECKLIST_OVERDUE, Finding


class ChecklistConditions:
    """`CHECKLIST_OVERDUE` for escalation: holds while the current checklist is unsigned
    `remind_after_days + 1` days after posting; clears when someone signs it off (or the
    next month's checklist replaces it)."""

    conditions: tuple[str, ...] = (CHECKLIST_OVERDUE,)

    def __init__(self, service: ChecklistService) -> None:
        self._service = service

    def check(self, now: datetime) -> list[Finding]:
        record = self._service.overdue(now)
        if record is None:
            return []
        days = (now - record.posted_at).days
        link = (
            message_link(record.channel, record.message_ts)
            if record.channel and record.message_ts
            else None
        )
        return [
            Finding(
                condition=CHECKLIST_OVERDUE,
                database=None,
                summary=(
                    f"The {record.period} backup verification checklist is not signed off "
                    f"{days} days after it was posted ({len(record.ticked)} of "
                    f"{len(ITEM_KEYS)} items ticked). Review the evidence, tick the items "
                    "and press Sign off on the checklist message."
                ),
                details={
                    "checklist_id": record.id,
                    "period": record.period,
                    "posted_at": record.posted_at.isoformat(),
                    "ticked": list(record.ticked),
                    "link": link,
                },
            )
        ]
