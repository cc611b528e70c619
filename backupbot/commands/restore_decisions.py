"""Decisions on pending restore requests: Approve/Deny/Cancel clicks, expiry and
withdrawal. Every move is a guarded update, so concurrent clicks start at most one
restore; a refused click leaves the request unchanged and is recorded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backupbot.clock import Clock
from backupbot.commands.approval_stages import current_index, stages_of
from backupbot.commands.approvals import APPROVE, DENY, CachedApprovers, Refusal, check_click
from backupbot.commands.click_origin import MISMATCH, ClickOrigin, mismatch, once_posted
from backupbot.commands.restore_model import BOT_ACTOR, record_incident
from backupbot.errors import BackupbotError
from backupbot.phrases import Name, say
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.restores import (
    CANCELLED,
    DENIED,
    EXPIRED,
    PENDING,
    RestoreRecord,
    RestoreRequests,
)

FINAL_REMINDER = timedelta(minutes=5)


@dataclass(frozen=True)
class ClickResult:
    """What a click did: `approved` (start the restore), `approval_recorded` (more needed),
    `denied`, `cancelled` or `refused` (with the reason; the request is unchanged)."""

    outcome: str
    record: RestoreRecord
    refusal: Refusal | None = None
    expired_now: bool = False  # the click found the request expired and closed it

    @property
    def start_restore(self) -> bool:
        return self.outcome == "approved"


@dataclass(frozen=True)
class Reminder:
    """A pending request that is running out of time, and how much is left."""

    record: RestoreRecord
    minutes_left: int


def reminder_times(record: RestoreRecord) -> list[datetime]:
    """When a pending request is reminded: halfway to expiry, and 5 minutes before
    when that is later than halfway."""
    halfway = record.created_at + (record.expires_at - record.created_at) / 2
    final = record.expires_at - FINAL_REMINDER
    return [halfway, final] if final > halfway else [halfway]


class RestoreDecisions:
    """Moves pending requests to approved, denied, cancelled or expired."""

    def __init__(
        self,
        *,
        restores: RestoreRequests,
        incidents: IncidentLog,
        clock: Clock,
        approvers: CachedApprovers,
    ) -> None:
        self._restores = restores
        self._incidents = incidents
        self._clock = clock
        self._approvers = approvers

    def click(
        self, restore_id: str, action: str, user: str, origin: ClickOrigin | None = None
    ) -> ClickResult:
        """Apply `user`'s Approve/Deny/Cancel click, made on the message at `origin` (None:
        not from Slack). Never raises for a refused click."""
        record = once_posted(lambda: self._restores.get(restore_id), origin)
        now = self._clock.now()
        what = say("restore request {id}", id=Name(record.id))
        wrong = mismatch(origin, record.channel, record.message_ts, what)
        if origin is not None and wrong is not None:
            refusal = Refusal(MISMATCH, wrong)
            return self._refuse(record, action, user, now, refusal, facts=origin.facts())
        expired_now = False
        for _attempt in range(10):
            record = self._restores.get(restore_id)
            if record.status == PENDING and now >= record.expires_at:
                expired_now = self.expire(record, now) or expired_now
                record = self._restores.get(restore_id)
            try:
                found = check_click(record, action, user, now, self._approvers.eligible)
            except BackupbotError as exc:
                found = Refusal("unverifiable", str(exc))
            if found is not None:
                return self._refuse(record, action, user, now, found, expired_now=expired_now)
            done = (
                self._approve(record, user, now)
                if action == APPROVE
                else self._close(record, DENIED if action == DENY else CANCELLED, user, now)
            )
            if done is not None:
                return done
        record = self._restores.get(restore_id)
        return ClickResult(
            "refused", record, Refusal("busy", "The request kept changing; try again.")
        )

    def _refuse(
        self,
        record: RestoreRecord,
        action: str,
        user: str,
        now: datetime,
        refusal: Refusal,
        *,
        expired_now: bool = False,
        facts: dict[str, str] | None = None,
    ) -> ClickResult:
        """Record the refused click; the request is unchanged."""
        self._record(
            now,
            user,
            "restore.click_refused",
            "refused",
            record.database,
            record,
            clicked=action,
            code=refusal.code,
            reason=str(refusal.message),
            **(facts or {}),
        )
        return ClickResult("refused", record, refusal, expired_now)

    def _approve(self, record: RestoreRecord, user: str, now: datetime) -> ClickResult | None:
        """Add `user`'s approval to `record` as read; None if it changed meanwhile."""
        # Whether *this* approval completes the request is decided by the state it was
        # applied to; reading the row afterwards could see a later approval.
        final = record.approval_count + 1 >= record.required_approvals
        stage = current_index(stages_of(record.policy, record.required_approvals), record.approvals)
        with self._incidents.atomic():
            if not self._restores.add_approval(record.id, user, now, record, stage or 0):
                return None
            record = self._restores.get(record.id)
            if final:
                self._record(
                    now,
                    user,
                    "restore.approved",
                    "ok",
                    record.database,
                    record,
                    approvals=record.approvals,
                )
                return ClickResult("approved", record)
            self._record(
                now,
                user,
                "restore.approval_recorded",
                "ok",
                record.database,
                record,
                approvals=record.approvals,
                required_approvals=record.required_approvals,
            )
            return ClickResult("approval_recorded", record)

    def _close(
        self, record: RestoreRecord, status: str, user: str, now: datetime
    ) -> ClickResult | None:
        """Deny or cancel the pending `record`; None if it changed meanwhile."""
        with self._incidents.atomic():
            if not self._restores.close_pending(record.id, status, user, now):
                return None
            record = self._restores.get(record.id)
            self._record(now, user, f"restore.{status}", status, record.database, record)
            return ClickResult(status, record)

    def expire(self, record: RestoreRecord, now: datetime) -> bool:
        """Close the pending `record` as expired; False if it was no longer pending."""
        with self._incidents.atomic():
            if not self._restores.close_pending(record.id, EXPIRED, BOT_ACTOR, now):
                return False
            self._record(
                now,
                BOT_ACTOR,
                "restore.expired",
                "expired",
                record.database,
                record,
                expired_at=record.expires_at.isoformat(),
            )
        return True

    def expire_due(self) -> list[RestoreRecord]:
        """Close every pending request past its expiry; returns the ones closed now."""
        now = self._clock.now()
        return [
            self._restores.get(r.id)
            for r in self._restores.due_to_expire(now)
            if self.expire(r, now)
        ]

    def reminders_due(self) -> list[Reminder]:
        """Pending requests due a reminder (halfway to expiry, then 5 minutes before),
        each claimed by a guarded update so one process reminds once. A sweep that finds
        both due (the bot was down) reminds once."""
        now = self._clock.now()
        out: list[Reminder] = []
        for record in self._restores.pending():
            due = sum(1 for at in reminder_times(record) if at <= now)
            if record.message_ts is None or due <= record.reminders_sent:
                continue
            with self._incidents.atomic():
                if not self._restores.mark_reminded(record, due, now):
                    continue
                minutes_left = max(0, int((record.expires_at - now).total_seconds() // 60))
                self._record(
                    now,
                    BOT_ACTOR,
                    "restore.reminded",
                    "ok",
                    record.database,
                    record,
                    minutes_left=minutes_left,
                    approvals=record.approvals,
                )
            out.append(Reminder(self._restores.get(record.id), minutes_left))
        return out

    def withdraw(self, restore_id: str, why: str) -> bool:
        """Close a pending request nobody can act on (e.g. its message was never posted)."""
        now = self._clock.now()
        record = self._restores.get(restore_id)
        with self._incidents.atomic():
            if not self._restores.close_pending(restore_id, CANCELLED, BOT_ACTOR, now):
                return False
            self._record(
                now,
                BOT_ACTOR,
                "restore.cancelled",
                "cancelled",
                record.database,
                record,
                reason=why,
            )
        return True

    def _record(self, *args: Any, **details: Any) -> None:
        record_incident(self._incidents, *args, **details)
