"""The review of break-glass restores: a restore nobody approved beforehand is approved
afterwards.

Every break-glass restore (`backupbot restore run --break-glass`) needs a review: an
approver other than the person who ran it presses Reviewed on its notice in the channel
within `restore.break_glass_review_hours`. The review is the restore's one approval, set
with a guarded update (`RestoreRequests.mark_reviewed`), so it happens once; it is recorded
as `restore.reviewed`. Refused clicks (the runner, someone without the approver role, a
second review, a click from another message) change nothing, are answered, and are
recorded as `restore.review_refused` with a code.

Not reviewed in time, it escalates like any alert: `BreakGlassReviews` is the
`ConditionCheck` of `REVIEW_OVERDUE`, one alert per database (its `details` name the
restores), with the escalation levels, acknowledgement and re-pages that come with it. The
alert resolves itself once every overdue restore of that database is reviewed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backupbot.commands import humanize
from backupbot.commands.access import Access
from backupbot.commands.click_origin import ClickOrigin, mismatch, once_posted, refusal_facts
from backupbot.commands.command_spec import Role
from backupbot.commands.conditions import Finding
from backupbot.errors import BackupbotError
from backupbot.phrases import Actor, Name, Phrase, join, say
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.restores import RestoreRecord, RestoreRequests

REVIEW_OVERDUE = "restore.review_overdue"
REVIEWED = "restore.reviewed"
REFUSED = "restore.review_refused"


@dataclass(frozen=True)
class Review:
    """Who reviewed a break-glass restore, and when."""

    user: str
    at: datetime


def review_of(record: RestoreRecord) -> Review | None:
    """The review of a break-glass restore (its one approval), if it has one."""
    if not record.break_glass or not record.approvals:
        return None
    first = record.approvals[0]
    return Review(str(first.get("user", "?")), datetime.fromisoformat(str(first["at"])))


def ran_at(record: RestoreRecord) -> datetime:
    return record.started_at or record.created_at


@dataclass(frozen=True)
class ReviewResult:
    """The restore after the click; `refusal` explains a click that changed nothing."""

    record: RestoreRecord
    refusal: Phrase | None = None


class BreakGlassReviews:
    """Reviews of break-glass restores, and the condition check of overdue ones."""

    conditions: tuple[str, ...] = (REVIEW_OVERDUE,)

    def __init__(
        self,
        restores: RestoreRequests,
        incidents: IncidentLog,
        access: Access | None,
        review_hours: float,
    ) -> None:
        self._restores = restores
        self._incidents = incidents
        self._access = access
        self._window = timedelta(hours=review_hours)

    @property
    def window(self) -> timedelta:
        return self._window

    def due_at(self, record: RestoreRecord) -> datetime:
        return ran_at(record) + self._window

    # -- the click --------------------------------------------------------------------------

    def review(
        self, restore_id: str, user: str, now: datetime, origin: ClickOrigin | None = None
    ) -> ReviewResult:
        """Apply a Reviewed click by `user` made on the message at `origin`. Raises
        `NotFound` for an unknown id."""
        record = once_posted(lambda: self._restores.get(restore_id), origin)
        wrong = mismatch(origin, record.channel, record.message_ts, say("this restore"))
        if origin is not None and wrong is not None:
            return self._refuse(record, user, now, wrong, **refusal_facts(origin, wrong, "review"))
        if not record.break_glass:
            why = say("Restore {id} was approved before it ran; it needs no review.", id=record.id)
            return self._refuse(record, user, now, why, code="review.not_break_glass")
        done = review_of(record)
        if done is not None:
            return self._refuse(record, user, now, _already(done), code="review.done")
        if user == record.requester:
            why = say(
                "You ran this break-glass restore, so someone else reviews it: {who}.",
                who=self._approvers(),
            )
            return self._refuse(record, user, now, why, code="review.self")
        try:
            allowed = self._access is None or self._access.has_role(user, Role.APPROVER)
        except BackupbotError as exc:
            return self._refuse(record, user, now, exc.phrase, code="review.lookup")
        if not allowed:
            why = say(
                "Reviewing a break-glass restore needs the approver role: {who}.",
                who=self._approvers(),
            )
            return self._refuse(record, user, now, why, code="review.role")
        if not self._restores.mark_reviewed(record.id, user, now):
            current = self._restores.get(record.id)
            done = review_of(current)
            why = _already(done) if done else say("This restore changed meanwhile; try again.")
            return self._refuse(current, user, now, why, code="review.done")
        reviewed = self._restores.get(record.id)
        self._incidents.record(
            at=now,
            actor=user,
            action=REVIEWED,
            outcome="ok",
            database=record.database,
            details={
                "restore_id": record.id,
                "ran_by": record.requester,
                "ran_at": ran_at(record).isoformat(),
                "due_at": self.due_at(record).isoformat(),
                "overdue": now > self.due_at(record),
                "outcome": record.status,
            },
        )
        return ReviewResult(reviewed)

    def _refuse(
        self, record: RestoreRecord, user: str, now: datetime, why: Phrase, **facts: Any
    ) -> ReviewResult:
        self._incidents.record(
            at=now,
            actor=user,
            action=REFUSED,
            outcome="refused",
            database=record.database,
            details={"restore_id": record.id, "reason": str(why), **facts},
        )
        return ReviewResult(record, why)

    def _approvers(self) -> Phrase:
        holders = self._access.rules.holders(Role.APPROVER) if self._access else []
        if not holders:
            return say("nobody has the approver role yet (slack.approvers in the config)")
        names = [
            say("members of {g}", g=Name("@" + h)) if h[:1] == "S" else say("{u}", u=Actor(h))
            for h in holders
        ]
        return say("an approver ({who})", who=join(names))

    # -- the condition ----------------------------------------------------------------------

    def check(self, now: datetime) -> list[Finding]:
        """One finding per database with break-glass restores past their review window."""
        overdue: dict[str, list[RestoreRecord]] = defaultdict(list)
        for record in self._restores.break_glass_restores(reviewed=False):
            if record.preview.get("review_required") and self.due_at(record) <= now:
                overdue[record.database].append(record)
        return [self._finding(database, records) for database, records in overdue.items()]

    def _finding(self, database: str, records: list[RestoreRecord]) -> Finding:
        first = records[0]
        hours = self._window.total_seconds() / 3600
        summary = say(
            "Break-glass restore {id} of {db} (run by {who} at {at}, without approval) was "
            "not reviewed within {hours} h.",
            id=Name(first.id),
            db=Name(database),
            who=Actor(first.requester),
            at=humanize.utc(ran_at(first)),
            hours=f"{hours:g}",
        )
        if len(records) > 1:
            summary += say(" {n} more are waiting too.", n=len(records) - 1)
        summary += say(
            " An approver other than the person who ran it presses Reviewed on its notice "
            "in the channel."
        )
        return Finding(
            REVIEW_OVERDUE,
            database,
            summary,
            {
                "restore_id": first.id,
                "restore_ids": [r.id for r in records],
                "ran_by": first.requester,
                "due_at": self.due_at(first).isoformat(),
            },
        )

    def resolution(self, condition: str, database: str | None, now: datetime) -> str | None:
        if condition != REVIEW_OVERDUE or database is None:
            return None
        reviews = [
            (r, review_of(r))
            for r in self._restores.break_glass_restores(reviewed=True, database=database)
        ]
        latest = max(
            ((r, rv) for r, rv in reviews if rv is not None), key=lambda x: x[1].at, default=None
        )
        if latest is None:
            return None
        record, review = latest
        at = humanize.utc(review.at)
        return f"Break-glass restore {record.id} reviewed by {review.user} at {at}."


def _already(done: Review) -> Phrase:
    return say(
        "{who} already reviewed this break-glass restore at {at}; nothing more to do.",
        who=Actor(done.user),
        at=humanize.utc(done.at),
    )
