"""Escalation: alerts that open when something is wrong, ping people along the runbook's
escalation path until someone acknowledges, and resolve themselves when the records say
the problem is over.

Conditions are pulled, not pushed: `AlertService.evaluate(now)` asks every
`ConditionCheck` for what holds now. A finding with no open alert opens one (the store's
unique `open_key` makes that atomic across processes); an open alert whose finding is gone
resolves, with a sentence saying why ("backup 3f9a1c2e succeeded at …"). A check that
raises is skipped and its alerts are left alone: not knowing is not the same as fixed.

`escalate(now)` claims, per alert, every level that is due and not yet fired with one
compare-and-set on `levels_fired`, so each level fires once, even after the clock jumped
or with two bot processes. It returns the `Ping`s for the Slack side to deliver, which
reports back: `ping_delivered` writes the `alert.ping` record, `ping_undelivered` gives the
claim back so the next step retries. Nothing here talks to Slack.

`BackupConditions` judges the catalog: a failed backup, a failed verification, and a
database without a recent verified backup.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from backupbot.clock import Clock
from backupbot.commands import humanize
from backupbot.commands.click_origin import ClickOrigin, mismatch, once_posted, refusal_facts
from backupbot.commands.conditions import (
    BACKUP_FAILED,
    STALE,
    VERIFICATION_FAILED,
    ConditionCheck,
    Finding,
)
from backupbot.commands.schedule import StaleRule, as_stale_rule
from backupbot.commands.status import AlertSummary
from backupbot.phrases import Actor, Phrase, say
from backupbot.settings import EscalationLevel
from backupbot.storage.alerts import (
    OPEN,
    AlertRecord,
    AlertStore,
    AttemptFact,
    BackupFacts,
    PostClaim,
    open_key,
)
from backupbot.storage.incidents import IncidentLog

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "system"
LATE_AFTER = timedelta(minutes=5)  # a ping sent this long after it was due says so

# The runbook's "Provider Support" list (seed: Emergency Contacts).
PROVIDER_SUPPORT: dict[str, str] = {
    "neon": "https://neon.tech/docs/support",
    "supabase": "https://supabase.com/support",
    "railway": "support@railway.app",
}
_PROVIDER_NAMES = {"neon": "Neon", "supabase": "Supabase", "railway": "Railway"}

VERIFICATION_ERROR_TYPES = frozenset({"VerificationFailed"})
MAX_ERROR_CHARS = 600


def provider_contact(provider: str | None) -> str | None:
    """One plain sentence with the runbook's support contact for `provider`; None when
    the alert is not about a database (no provider applies)."""
    if provider is None:
        return None
    contact = PROVIDER_SUPPORT.get(provider)
    if contact is not None:
        return f"{_PROVIDER_NAMES[provider]} support: {contact}"
    listed = ", ".join(_PROVIDER_NAMES[p] for p in PROVIDER_SUPPORT)
    return (
        f"The runbook has no support contact for {provider} databases (it lists {listed}); "
        "contact your provider through its dashboard and add the contact to the runbook."
    )


@runtime_checkable
class ExplainsResolution(Protocol):
    """Optional for a `ConditionCheck`: why a condition of `database` no longer holds."""

    def resolution(self, condition: str, database: str | None, now: datetime) -> str | None: ...


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation changed. `resolved` alerts are cleared but their resolution is
    not yet shown in Slack; `failed_checks` names checks that raised (alerts left alone)."""

    opened: list[AlertRecord] = field(default_factory=list)
    resolved: list[AlertRecord] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Ping:
    """One escalation level firing for one alert: who to mention (users are also DMed;
    groups are mentioned only) and, for a provider-support level, the contact sentence."""

    alert: AlertRecord
    level_index: int  # 0-based position in the escalation path
    level_count: int
    name: str
    after_minutes: int
    users: tuple[str, ...]
    groups: tuple[str, ...]
    provider_support: bool
    provider: str | None
    provider_contact: str | None
    next_name: str | None
    next_after_minutes: int | None
    claimed_to: int  # `levels_fired` after the claim this ping belongs to
    due_at: datetime
    sent_at: datetime

    @property
    def number(self) -> int:
        return self.level_index + 1

    @property
    def nobody(self) -> bool:
        """No user or group is configured for this level."""
        return not self.users and not self.groups

    @property
    def late(self) -> bool:
        return self.sent_at - self.due_at > LATE_AFTER


@dataclass(frozen=True)
class PingDelivery:
    """What Slack accepted: the thread reply, and the DMs sent and failed (user ids)."""

    thread: bool
    dms: tuple[str, ...] = ()
    dm_failures: tuple[str, ...] = ()

    @property
    def delivered(self) -> bool:
        return self.thread or bool(self.dms)


@dataclass(frozen=True)
class AckResult:
    """The alert after the click; `refusal` explains a click that changed nothing."""

    record: AlertRecord
    refusal: Phrase | str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.refusal is None


def _check_name(check: ConditionCheck) -> str:
    return type(check).__name__


class AlertService:
    """Opens, escalates, acknowledges and resolves alerts. Safe to share across threads
    and to run in several processes against one state database."""

    def __init__(
        self,
        store: AlertStore,
        incidents: IncidentLog,
        checks: Sequence[ConditionCheck],
        levels: Sequence[EscalationLevel],
        providers: Mapping[str, str],
        clock: Clock,
    ) -> None:
        self._store = store
        self._incidents = incidents
        self._checks: list[ConditionCheck] = list(checks)
        self._levels = list(levels)
        self._providers = dict(providers)
        self._clock = clock

    @property
    def levels(self) -> list[EscalationLevel]:
        return list(self._levels)

    def add_check(self, check: ConditionCheck) -> None:
        self._checks.append(check)

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(self, now: datetime) -> Evaluation:
        """Open an alert for each new finding; resolve open alerts whose finding is gone."""
        findings: dict[str, Finding] = {}
        judged: set[str] = set()
        unjudged: set[str] = set()  # conditions a failed check owns: nobody may clear them
        failed: list[str] = []
        for check in self._checks:
            try:
                found = check.check(now)
            except Exception:
                log.exception(
                    "condition check %s failed; its alerts are left as they are", _check_name(check)
                )
                failed.append(_check_name(check))
                unjudged.update(check.conditions)
                continue
            judged.update(check.conditions)
            for f in found:
                findings.setdefault(open_key(f.condition, f.database), f)
        open_now = {open_key(a.condition, a.database): a for a in self._store.open_alerts()}

        opened: list[AlertRecord] = []
        for key, f in findings.items():
            if key in open_now:
                continue
            record = self._store.open(f.condition, f.database, f.summary, dict(f.details), now)
            if record is None:
                continue  # another process opened it a moment ago
            self._record(
                record, "alert.opened", "open", now, summary=record.summary, evidence=record.details
            )
            opened.append(record)

        resolved: list[AlertRecord] = []
        for key, alert in open_now.items():
            if key in findings or alert.condition not in judged - unjudged:
                continue
            text = self._resolution(alert, now)
            if not self._store.clear(alert.id, text, now):
                continue  # another process resolved it
            record = self._store.get(alert.id)
            self._record(
                record,
                "alert.resolved",
                "resolved",
                now,
                resolution=text,
                acknowledged_by=record.acknowledged_by,
                open_minutes=int((now - record.opened_at).total_seconds() // 60),
            )
            resolved.append(record)
        return Evaluation(opened, resolved, failed)

    def _resolution(self, alert: AlertRecord, now: datetime) -> str:
        for check in self._checks:
            if alert.condition in check.conditions and isinstance(check, ExplainsResolution):
                try:
                    text = check.resolution(alert.condition, alert.database, now)
                except Exception:
                    log.exception("explaining the resolution of alert %s failed", alert.id)
                    text = None
                if text:
                    return text
        return f"No longer found at {humanize.utc(now)}."

    # -- escalation -------------------------------------------------------------------------

    def escalate(self, now: datetime) -> list[Ping]:
        """Claim every due, unfired level of each open, unacknowledged, posted alert.

        Levels are claimed per alert in one compare-and-set, so after a clock jump each
        overdue level fires exactly once. The caller delivers the pings and reports back
        with `ping_delivered` / `ping_undelivered`. Alerts not yet in Slack wait: the
        pings are thread replies.
        """
        pings: list[Ping] = []
        for alert in self._store.open_alerts():
            if alert.acknowledged_by is not None or not alert.posted:
                continue
            seen = alert.levels_fired
            upto = seen
            while upto < len(self._levels) and self._due_at(alert, upto) <= now:
                upto += 1
            if upto == seen or not self._store.claim_levels(alert.id, seen, upto):
                continue
            pings.extend(self._ping(alert, i, upto, now) for i in range(seen, upto))
        return pings

    def _due_at(self, alert: AlertRecord, index: int) -> datetime:
        return alert.opened_at + timedelta(minutes=self._levels[index].after_minutes)

    def _ping(self, alert: AlertRecord, index: int, claimed_to: int, now: datetime) -> Ping:
        level = self._levels[index]
        nxt = self._levels[index + 1] if index + 1 < len(self._levels) else None
        provider = self._providers.get(alert.database) if alert.database else None
        if alert.database and provider is None:
            provider = "generic"  # a database no longer configured: no provider known
        return Ping(
            alert=alert,
            level_index=index,
            level_count=len(self._levels),
            name=level.name,
            after_minutes=level.after_minutes,
            users=tuple(m for m in level.mention if m[:1] in ("U", "W")),
            groups=tuple(m for m in level.mention if m[:1] == "S"),
            provider_support=level.provider_support,
            provider=provider,
            provider_contact=provider_contact(provider) if level.provider_support else None,
            next_name=nxt.name if nxt else None,
            next_after_minutes=nxt.after_minutes if nxt else None,
            claimed_to=claimed_to,
            due_at=self._due_at(alert, index),
            sent_at=now,
        )

    def ping_delivered(self, ping: Ping, delivery: PingDelivery, now: datetime) -> None:
        """Record the `alert.ping` of a ping Slack accepted (fully or in part)."""
        partial = not delivery.thread or bool(delivery.dm_failures)
        self._record(
            ping.alert,
            "alert.ping",
            "partial" if partial else "sent",
            now,
            level=ping.name,
            level_number=ping.number,
            after_minutes=ping.after_minutes,
            mentions=[*ping.users, *ping.groups],
            dms=list(delivery.dms),
            dm_failures=list(delivery.dm_failures),
            thread=delivery.thread,
            provider_contact=ping.provider_contact,
            due_at=ping.due_at.isoformat(),
            late=ping.late,
        )

    def ping_undelivered(self, ping: Ping) -> bool:
        """Slack took nothing: give this level (and any claimed after it) back, so the next
        step fires it again. False if the alert moved on meanwhile."""
        log.warning(
            "ping of alert %s level %s not delivered; retrying next step", ping.alert.id, ping.name
        )
        return self._store.release_levels(ping.alert.id, ping.claimed_to, ping.level_index)

    # -- acknowledgement --------------------------------------------------------------------

    def acknowledge(
        self, alert_id: str, user: str, now: datetime, origin: ClickOrigin | None = None
    ) -> AckResult:
        """The first click on an open alert wins and stops its pings; any other click, or
        one not made on the alert's message (`origin`), is refused with an explanation and
        recorded. Raises `NotFound` for an unknown id."""
        alert = once_posted(lambda: self._store.get(alert_id), origin)
        wrong = mismatch(origin, alert.channel, alert.message_ts, say("this alert"))
        if origin is not None and wrong is not None:
            facts = refusal_facts(origin, wrong, "acknowledge")
            self._record(alert, "access.denied", "refused", now, actor=user, **facts)
            return AckResult(alert, wrong)
        if self._store.acknowledge(alert_id, user, now):
            record = self._store.get(alert_id)
            self._record(
                record,
                "alert.acknowledged",
                "ok",
                now,
                actor=user,
                levels_fired=record.levels_fired,
                after_minutes=int((now - record.opened_at).total_seconds() // 60),
            )
            return AckResult(record)
        current = self._store.get(alert_id)
        refusal: Phrase | str
        if current.status != OPEN:
            refusal = (
                f"This alert was already resolved at {humanize.utc(current.resolved_at)}"
                f" ({current.resolution or 'its condition cleared'}); there is nothing to "
                "acknowledge."
            )
        elif current.acknowledged_by == user:
            refusal = (
                f"You already acknowledged this alert at "
                f"{humanize.utc(current.acknowledged_at)}; no more pings are sent."
            )
        else:
            refusal = say(
                "{who} already acknowledged this alert at {at}; the pings stopped then. "
                "Coordinate with them in the alert's thread.",
                who=Actor(current.acknowledged_by or "?"),
                at=humanize.utc(current.acknowledged_at),
            )
        self._record(current, "alert.ack_refused", "refused", now, actor=user, reason=str(refusal))
        return AckResult(current, refusal)

    # -- posting bookkeeping for the Slack side ----------------------------------------------

    def unposted(self) -> list[AlertRecord]:
        return self._store.unposted()

    def claim_post(self, alert: AlertRecord, now: datetime) -> PostClaim | None:
        return self._store.claim_post(alert, now)

    def posted(self, claim: PostClaim, channel: str, ts: str) -> AlertRecord:
        self._store.set_posted(claim, channel, ts)
        return self._store.get(claim.alert.id)

    def post_failed(self, claim: PostClaim) -> None:
        self._store.release_post(claim)

    def pending_resolutions(self, now: datetime) -> list[AlertRecord]:
        return self._store.resolving(now)

    def claim_resolution(self, alert: AlertRecord) -> bool:
        return self._store.claim_resolution(alert.id)

    def resolution_failed(self, alert: AlertRecord) -> None:
        self._store.release_resolution(alert.id)

    # -- queries ----------------------------------------------------------------------------

    def get(self, alert_id: str) -> AlertRecord:
        return self._store.get(alert_id)

    def open_alerts(self) -> list[AlertRecord]:
        """Open alerts, oldest first (for `/backup status`)."""
        return self._store.open_alerts()

    def summaries(self) -> list[AlertSummary]:
        """Open alerts as `/backup status` shows them."""
        return [
            AlertSummary(
                id=a.id,
                condition=a.condition,
                database=a.database,
                summary=a.summary,
                opened_at=a.opened_at,
                acknowledged_by=a.acknowledged_by,
                acknowledged_at=a.acknowledged_at,
            )
            for a in self.open_alerts()
        ]

    def _record(
        self,
        alert: AlertRecord,
        action: str,
        outcome: str,
        now: datetime,
        *,
        actor: str = SYSTEM_ACTOR,
        **details: Any,
    ) -> None:
        self._incidents.record(
            at=now,
            actor=actor,
            action=action,
            outcome=outcome,
            database=alert.database,
            details={"alert_id": alert.id, "condition": alert.condition, **details},
        )


# -- conditions from the backup catalog ------------------------------------------------------


class BackupConditions:
    """BACKUP_FAILED, VERIFICATION_FAILED and STALE for each configured database.

    - VERIFICATION_FAILED: an attempt since the newest verified backup failed in
      verification (its `backup.failed` record has `error_type` VerificationFailed: the
      stored copy did not match what was written). The record, not the error text, decides:
      the text is wording for people and may change.
    - BACKUP_FAILED: an attempt since the newest verified backup failed for another reason.
      Running attempts do not count; only finished ones. So normally exactly one of the
      two holds when the latest finished attempt failed, and both clear when a backup
      succeeds (a later failure of the other kind does not hide an earlier one).
    - STALE: no verified backup started since the time its `StaleRule` owes one from,
      judged at each check: the newest scheduled firing whose grace has run out (so a
      weekday schedule is not stale at the weekend), or `now` minus a fixed maximum age.
      A database that never had one is stale once that time is after the bot's records
      first mention it (its first backup attempt or incident); with no record at all it is
      not judged yet.
    """

    conditions: tuple[str, ...] = (BACKUP_FAILED, VERIFICATION_FAILED, STALE)

    def __init__(self, facts: BackupFacts, stale_after: Mapping[str, StaleRule | timedelta]):
        """`stale_after`: per configured database, when its newest verified backup is
        stale (`stale_rules(settings)`; a plain timedelta is a maximum age)."""
        self._facts = facts
        self._databases = list(stale_after)
        self._stale_after = {db: as_stale_rule(rule) for db, rule in stale_after.items()}

    def check(self, now: datetime) -> list[Finding]:
        findings: list[Finding] = []
        for db in self._databases:
            good = self._facts.latest_verified(db)
            failures = self._facts.failures_since(db, good.started_at if good else None)
            verification = [f for f in failures if f.error_type in VERIFICATION_ERROR_TYPES]
            other = [f for f in failures if f.error_type not in VERIFICATION_ERROR_TYPES]
            if other:
                findings.append(self._failed(db, other, good))
            if verification:
                findings.append(self._verification(db, verification, good))
            stale = self._stale(db, good, now)
            if stale is not None:
                findings.append(stale)
        return findings

    def resolution(self, condition: str, database: str | None, now: datetime) -> str | None:
        if database not in self._databases:
            return f"{database} is no longer configured."
        good = self._facts.latest_verified(database)
        if good is None:
            return None
        return (
            f"backup {good.id} of {database} succeeded and was verified at "
            f"{humanize.utc(good.finished_at or good.started_at)}."
        )

    def _failed(self, db: str, failures: list[AttemptFact], good: AttemptFact | None) -> Finding:
        last = failures[0]
        more = f" {len(failures)} attempts have failed" if len(failures) > 1 else ""
        since = _since(good)
        summary = (
            f"The latest backup of {db} failed (id {last.id}, "
            f"{humanize.utc(last.finished_at or last.started_at)}): {_error(last)}"
            + (f"{more} {since}." if more else "")
            + f" Fix the cause and run /backup now {db}; this alert resolves when a backup "
            "succeeds."
        )
        return Finding(BACKUP_FAILED, db, summary, _evidence(failures, good))

    def _verification(
        self, db: str, failures: list[AttemptFact], good: AttemptFact | None
    ) -> Finding:
        last = failures[0]
        summary = (
            f"A backup of {db} failed verification (id {last.id}, "
            f"{humanize.utc(last.finished_at or last.started_at)}): {_error(last)} "
            "The stored copy did not match what was written, so it was not kept; check the "
            f"backup storage, then run /backup now {db}."
        )
        return Finding(VERIFICATION_FAILED, db, summary, _evidence(failures, good))

    def _stale(self, db: str, good: AttemptFact | None, now: datetime) -> Finding | None:
        rule = self._stale_after[db]
        owed = rule.owed_since(now)
        if owed is None:
            return None
        if good is not None:
            if good.started_at >= owed:
                return None
            summary = (
                f"No verified backup of {db} {rule.describe(now)}: the newest is "
                f"{humanize.age(good.started_at, now)} ({humanize.utc(good.started_at)}, id "
                f"{good.id}). Check the schedule and the last attempts, or run "
                f"/backup now {db}."
            )
            return Finding(
                STALE,
                db,
                summary,
                {
                    "newest_backup_id": good.id,
                    "newest_at": good.started_at.isoformat(),
                    "owed_since": owed.isoformat(),
                },
            )
        first = self._facts.first_seen(db)
        if first is None or first >= owed:
            return None
        summary = (
            f"{db} has never had a verified backup, and backupbot has looked after it since "
            f"{humanize.utc(first)}. Check the schedule and the last attempts, or run "
            f"/backup now {db}."
        )
        return Finding(
            STALE,
            db,
            summary,
            {
                "newest_backup_id": None,
                "first_seen": first.isoformat(),
                "owed_since": owed.isoformat(),
            },
        )


def _since(good: AttemptFact | None) -> str:
    return (
        f"since the last verified backup ({good.id}, {humanize.utc(good.started_at)})"
        if good
        else "and there is no verified backup yet"
    )


def _error(attempt: AttemptFact) -> str:
    text = (attempt.error or "no reason was recorded.").strip()
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return text if text.endswith((".", "…", "!", "?")) else text + "."


def _evidence(failures: list[AttemptFact], good: AttemptFact | None) -> dict[str, Any]:
    last = failures[0]
    return {
        "backup_id": last.id,
        "failed_at": (last.finished_at or last.started_at).isoformat(),
        "error_type": last.error_type,
        "failures": len(failures),
        "last_good_backup_id": good.id if good else None,
    }
