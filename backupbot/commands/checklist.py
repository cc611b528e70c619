"""The monthly Backup Verification Checklist as people use it: posted once per period,
ticked, signed off by one of them (the rules are in `checklist_rules`).

`ChecklistService` owns the checklist of each period ("2026-12", the month of `now` in
the schedules' time zone): ticks are compare-and-set on the row's version, the sign-off
needs all five items ticked and records the evaluation at that moment, the reminder is
claimed once. `ChecklistConditions` tells escalation when a checklist is overdue: still
unsigned `remind_after_days + 1` days after it was posted (the reminder had a day to
work).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backupbot.clock import Clock
from backupbot.commands import humanize
from backupbot.commands.checklist_rules import (
    ITEM_KEYS,
    ChecklistEvaluation,
    ChecklistPolicy,
    evaluate,
    gather_evidence,
    item_title,
    period_of,
)
from backupbot.commands.click_origin import ClickOrigin, mismatch, once_posted, refusal_facts
from backupbot.commands.provider_facts import ProviderFactsService
from backupbot.commands.schedule import SCHEDULER_ACTOR
from backupbot.commands.status import ChecklistSummary
from backupbot.errors import BackupbotError
from backupbot.phrases import Actor, Phrase, join, say
from backupbot.settings import Settings
from backupbot.storage.checklists import (
    ChecklistEvidenceQueries,
    ChecklistRecord,
    Checklists,
)
from backupbot.storage.incidents import IncidentLog

_POST_CLAIM_STALE = timedelta(minutes=10)  # a post claim this old belonged to a dead process
_CAS_ATTEMPTS = 8


@dataclass(frozen=True)
class ChecklistClick:
    """What a tick or sign-off did: `changed` if the row moved; `refusal` (one or two
    sentences for the clicker) when it was not allowed."""

    record: ChecklistRecord
    changed: bool
    refusal: Phrase | str | None = None
    needs_reason: list[str] | None = None  # refused only for want of a reason: these items


MAX_REASON = 500  # characters of a sign-off reason


def _reason_needed(look: list[str]) -> Phrase:
    return say(
        "{items} needs a look, so signing off takes a reason: say why it is acceptable "
        "this month (it is kept with the sign-off).",
        items=join([item_title(k) for k in look]),
    )


class ChecklistService:
    def __init__(
        self,
        *,
        settings: Settings,
        checklists: Checklists,
        evidence: ChecklistEvidenceQueries,
        incidents: IncidentLog,
        clock: Clock,
        providers: ProviderFactsService | None = None,
    ) -> None:
        self._settings = settings
        self._providers = providers
        self._checklists = checklists
        self._evidence = evidence
        self._incidents = incidents
        self._clock = clock
        self.policy = ChecklistPolicy.from_settings(settings)

    @property
    def remind_after(self) -> timedelta:
        return timedelta(days=self._settings.checklist.remind_after_days)

    @property
    def overdue_after(self) -> timedelta:
        """When escalation takes over: a day after the reminder."""
        return self.remind_after + timedelta(days=1)

    def period(self, now: datetime) -> str:
        return period_of(now, self._settings.schedules.timezone)

    # -- reading --------------------------------------------------------------------------

    def evaluate(self, now: datetime) -> ChecklistEvaluation:
        recovery = tuple(self._providers.facts().values()) if self._providers else ()
        evidence = gather_evidence(self._evidence, self._settings, now, recovery)
        return evaluate(evidence, self.policy)

    def current(self, now: datetime) -> ChecklistRecord | None:
        """The newest checklist up to `now`'s period (last month's until this month's is
        posted)."""
        return self._checklists.latest(self.period(now))

    def summary(self, now: datetime) -> ChecklistSummary | None:
        """The current checklist as `/backup status` shows it."""
        record = self.current(now)
        if record is None:
            return None
        return ChecklistSummary(
            period=record.period,
            posted_at=record.posted_at,
            ticked=len(record.ticked),
            items=len(ITEM_KEYS),
            signed_off_by=record.signed_off_by,
            signed_off_at=record.signed_off_at,
            channel=record.channel,
            message_ts=record.message_ts,
        )

    def get(self, checklist_id: str) -> ChecklistRecord:
        return self._checklists.get(checklist_id)

    # -- posting --------------------------------------------------------------------------

    def prepare(self, now: datetime) -> ChecklistRecord:
        """This period's checklist row, created if missing (by exactly one process)."""
        record, _created = self._checklists.create(self.period(now), now)
        return record

    def claim_post(self, checklist_id: str, channel: str, now: datetime) -> ChecklistRecord | None:
        """Evaluate and claim the posting of an unposted checklist; None if it is posted
        or another process is posting it right now."""
        evaluation = self.evaluate(now)
        if not self._checklists.claim_post(
            checklist_id, channel, now, evaluation.as_json(), now - _POST_CLAIM_STALE
        ):
            return None
        return self._checklists.get(checklist_id)

    def release_post(self, checklist_id: str) -> None:
        self._checklists.release_post(checklist_id)

    def posted(
        self, checklist_id: str, channel: str, ts: str, now: datetime, actor: str = SCHEDULER_ACTOR
    ) -> ChecklistRecord:
        self._checklists.set_message(checklist_id, channel, ts)
        record = self._checklists.get(checklist_id)
        evaluation = ChecklistEvaluation.from_json(record.evaluation)
        self._record(
            record,
            "checklist.posted",
            "ok",
            actor,
            now,
            channel=channel,
            ts=ts,
            items=evaluation.verdicts() if evaluation else {},
        )
        return record

    def _record(
        self,
        record: ChecklistRecord,
        action: str,
        outcome: str,
        actor: str,
        now: datetime,
        **details: Any,
    ) -> None:
        """One incident record about a checklist, naming it and its period."""
        self._incidents.record(
            at=now,
            actor=actor,
            action=action,
            outcome=outcome,
            details={"checklist_id": record.id, "period": record.period, **details},
        )

    # -- clicks ---------------------------------------------------------------------------

    def tick(
        self,
        checklist_id: str,
        user: str,
        selected: Iterable[str],
        seen: Iterable[str] | None,
        *,
        now: datetime,
        origin: ClickOrigin | None = None,
    ) -> ChecklistClick:
        """Apply what `user` changed: `selected` is the ticked set their click sent, `seen`
        the set their message showed before it (None: take `selected` as the whole set).
        Others' concurrent ticks are kept: only the user's own change is applied, on top
        of the current row, with a compare-and-set on its version. A click from another
        message than the checklist's (`origin`) is refused."""
        refused = self._wrong_message(checklist_id, "tick", user, now, origin)
        if refused is not None:
            return refused
        wanted = {k for k in selected if k in ITEM_KEYS}
        for _attempt in range(_CAS_ATTEMPTS):
            record = self._checklists.get(checklist_id)
            if record.signed_off:
                return ChecklistClick(record, False, self._already_signed(record))
            base = set(record.ticked) if seen is None else {k for k in seen if k in ITEM_KEYS}
            checked, unchecked = wanted - base, base - wanted
            new = tuple(k for k in ITEM_KEYS if k in (set(record.ticked) | checked) - unchecked)
            if new == record.ticked:
                return ChecklistClick(record, False)
            if self._checklists.set_ticked(record.id, new, record.version):
                self._record(
                    record,
                    "checklist.ticked",
                    "ok",
                    user,
                    now,
                    checked=[k for k in ITEM_KEYS if k in checked],
                    unchecked=[k for k in ITEM_KEYS if k in unchecked],
                    ticked=list(new),
                )
                return ChecklistClick(self._checklists.get(record.id), True)
        raise BackupbotError("The checklist changed several times at once; tick the item again.")

    def sign_off(
        self,
        checklist_id: str,
        user: str,
        *,
        now: datetime,
        origin: ClickOrigin | None = None,
        reason: str | None = None,
    ) -> ChecklistClick:
        """Sign off once all five items are ticked, recording who, when and the bot's
        evaluation at this moment (evaluated afresh). When an item needs a look, only
        with a `reason`, which is kept with the sign-off. A click from another message
        than the checklist's (`origin`) is refused."""
        refused = self._wrong_message(checklist_id, "sign_off", user, now, origin)
        if refused is not None:
            return refused
        for _attempt in range(_CAS_ATTEMPTS):
            record = self._checklists.get(checklist_id)
            if record.signed_off:
                return ChecklistClick(record, False, self._already_signed(record))
            gate = self._sign_off_gate(record, user, now)
            if gate is not None:
                return gate
            evaluation = self.evaluate(now)
            reason = " ".join((reason or "").split())[:MAX_REASON] or None
            if evaluation.needs_look and reason is None:
                self._record(
                    record, "checklist.sign_off_refused", "refused", user, now, reason="no_reason"
                )
                look = list(evaluation.needs_look)
                return ChecklistClick(record, False, _reason_needed(look), needs_reason=look)
            stored = {**evaluation.as_json(), **({"sign_off_reason": reason} if reason else {})}
            if self._checklists.sign_off(record.id, user, now, stored, record.version):
                self._record(
                    record,
                    "checklist.signed_off",
                    "ok",
                    user,
                    now,
                    evaluation_ok=evaluation.ok,
                    needs_look=evaluation.needs_look,
                    items=evaluation.verdicts(),
                    sign_off_reason=reason,
                )
                return ChecklistClick(self._checklists.get(record.id), True)
        raise BackupbotError("The checklist changed several times at once; press Sign off again.")

    def _sign_off_gate(
        self, record: ChecklistRecord, user: str, now: datetime
    ) -> ChecklistClick | None:
        """A refused sign-off (recorded) while items are unticked, or when `user` ticked
        the last one (four eyes); None when it may go on."""
        unticked = [k for k in ITEM_KEYS if k not in record.ticked]
        if unticked:
            self._record(
                record,
                "checklist.sign_off_refused",
                "refused",
                user,
                now,
                unticked=unticked,
            )
            return ChecklistClick(
                record,
                False,
                say(
                    "Tick every item before signing off; still unticked: {names}. Look "
                    "at each one's evidence, tick it, then press Sign off again.",
                    names=join([item_title(k) for k in unticked]),
                ),
            )
        last = self._last_ticker(record.id)
        if last == user:
            self._record(
                record, "checklist.sign_off_refused", "refused", user, now, reason="four_eyes"
            )
            return ChecklistClick(record, False, _four_eyes(user))
        return None

    def _wrong_message(
        self,
        checklist_id: str,
        clicked: str,
        user: str,
        now: datetime,
        origin: ClickOrigin | None,
    ) -> ChecklistClick | None:
        """The refusal of a click that did not come from the checklist's own message
        (recorded as `access.denied`), or None."""
        record = once_posted(lambda: self._checklists.get(checklist_id), origin)
        what = say("the {period} checklist", period=record.period)
        wrong = mismatch(origin, record.channel, record.message_ts, what)
        if origin is None or wrong is None:
            return None
        facts = refusal_facts(origin, wrong, clicked)
        self._record(record, "access.denied", "refused", user, now, **facts)
        return ChecklistClick(record, False, wrong)

    def _last_ticker(self, checklist_id: str) -> str | None:
        """Who ticked the last item on (the newest tick that checked one), if recorded."""
        for incident in self._incidents.recent_of("checklist.ticked", 500):
            if incident.details.get("checklist_id") == checklist_id and incident.details.get(
                "checked"
            ):
                return incident.actor
        return None

    def _already_signed(self, record: ChecklistRecord) -> Phrase:
        assert record.signed_off_by is not None
        return say(
            "The {period} checklist was already signed off by {who} on {at}; nothing changed.",
            period=record.period,
            who=Actor(record.signed_off_by),
            at=humanize.utc(record.signed_off_at),
        )

    # -- reminder and escalation ----------------------------------------------------------

    def unposted(self, now: datetime) -> ChecklistRecord | None:
        """This period's checklist if it exists but its message never made it to Slack."""
        record = self._checklists.for_period(self.period(now))
        return record if record is not None and not record.posted else None

    def due_reminder(self, now: datetime) -> ChecklistRecord | None:
        """The current checklist if it is posted, unsigned, unreminded and old enough."""
        record = self.current(now)
        if (
            record is None
            or not record.posted
            or record.signed_off
            or record.reminded_at is not None
            or now - record.posted_at < self.remind_after
        ):
            return None
        return record

    def claim_reminder(self, checklist_id: str, now: datetime) -> bool:
        return self._checklists.claim_reminder(checklist_id, now)

    def release_reminder(self, checklist_id: str) -> None:
        self._checklists.release_reminder(checklist_id)

    def reminded(self, record: ChecklistRecord, now: datetime, ts: str) -> None:
        self._record(
            record,
            "checklist.reminded",
            "ok",
            SCHEDULER_ACTOR,
            now,
            ticked=list(record.ticked),
            ts=ts,
        )

    def overdue(self, now: datetime) -> ChecklistRecord | None:
        """The current checklist if it is unsigned `overdue_after` after it was posted."""
        record = self.current(now)
        if record is None or record.signed_off or now - record.posted_at < self.overdue_after:
            return None
        return record


def _four_eyes(user: str) -> Phrase:
    return say(
        "{who} ticked the last item, so someone else signs off: four eyes on every "
        "checklist. Ask a teammate to look at the evidence and press Sign off.",
        who=Actor(user),
    )
