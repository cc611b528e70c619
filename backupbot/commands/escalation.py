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

Who may acknowledge is `AckRule`'s (`escalation_ack.py`): the people of the levels fired
so far, admins, or operators while those levels name nobody. An acknowledgement holds for
`reack_after` (PagerDuty's acknowledgement timeout): `repage_due(now)` takes it away from
an alert still failing after that long, with a guarded update so it pages once, and
restarts the path at the current level.

`BackupConditions` (`backup_conditions.py`) judges the catalog: a failed backup, a failed
verification, and a database without a recent verified backup.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from backupbot.clock import Clock
from backupbot.commands import humanize

# Re-exported: bot/composition.py imports BackupConditions from here.
from backupbot.commands.backup_conditions import BackupConditions as BackupConditions
from backupbot.commands.click_origin import ClickOrigin, mismatch, once_posted, refusal_facts
from backupbot.commands.conditions import ConditionCheck, Finding
from backupbot.commands.escalation_ack import AckRule, why_not_again
from backupbot.commands.escalation_reack import delay, lapse
from backupbot.commands.escalation_types import (
    AckResult,
    Evaluation,
    Ping,
    PingDelivery,
    Repage,
)
from backupbot.commands.provider_support import provider_contact
from backupbot.commands.status import AlertSummary
from backupbot.commands.status_sources import OpenAlerts
from backupbot.phrases import say
from backupbot.settings import EscalationLevel
from backupbot.storage.alerts import OPEN, AlertRecord, AlertStore, PostClaim, open_key
from backupbot.storage.incidents import IncidentLog

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "system"


@runtime_checkable
class ExplainsResolution(Protocol):
    """Optional for a `ConditionCheck`: why a condition of `database` no longer holds."""

    def resolution(self, condition: str, database: str | None, now: datetime) -> str | None: ...


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
        ack_rule: AckRule | None = None,
        reack_after_minutes: int = 0,
    ) -> None:
        self._store = store
        self._incidents = incidents
        self._checks: list[ConditionCheck] = list(checks)
        self._levels = list(levels)
        self._providers = dict(providers)
        self._clock = clock
        self._ack_rule = ack_rule or AckRule(levels, None, None)
        self._reack_after = timedelta(minutes=reack_after_minutes)

    @property
    def levels(self) -> list[EscalationLevel]:
        return list(self._levels)

    @property
    def reack_after(self) -> timedelta | None:
        """How long an acknowledgement holds while the alert keeps failing; None: for good."""
        return self._reack_after if self._reack_after > timedelta(0) else None

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
        """When level `index` is due: its minute after the alert opened, pushed back by
        the re-pages (`repage_due`), which restart the path at the current level."""
        after = timedelta(minutes=self._levels[index].after_minutes)
        return alert.opened_at + after + delay(alert)

    # -- re-acknowledgement -----------------------------------------------------------------

    def repage_due(self, now: datetime) -> list[Repage]:
        """Take the acknowledgement away from every open alert acknowledged longer than
        `reack_after` ago (`escalation_reack.lapse`); the caller delivers the re-pages
        and reports back with `repage_delivered`."""
        after = self.reack_after
        if after is None:
            return []
        alerts = self._store.open_alerts()
        repages = (lapse(self._store, self._levels, a, after, now) for a in alerts)
        return [r for r in repages if r is not None]

    def repage_delivered(self, repage: Repage, delivery: PingDelivery, now: datetime) -> None:
        """Record the `alert.reack` of a lapse, with what Slack took."""
        outcome = "sent" if delivery.thread and not delivery.dm_failures else "partial"
        self._record(
            repage.alert,
            "alert.reack",
            outcome if delivery.delivered else "undelivered",
            now,
            acknowledged_by=repage.acknowledged_by,
            acknowledged_at=repage.acknowledged_at.isoformat(),
            minutes=repage.minutes,
            level=repage.level_name,
            mentions=[*repage.users, *repage.groups],
            dms=list(delivery.dms),
            dm_failures=list(delivery.dm_failures),
            thread=delivery.thread,
        )

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
        """The first click on an open alert by someone `AckRule` allows wins and stops
        its pings; any other click, or one not made on the alert's message (`origin`), is
        refused with an explanation and recorded. Raises `NotFound` for an unknown id."""
        alert = once_posted(lambda: self._store.get(alert_id), origin)
        wrong = mismatch(origin, alert.channel, alert.message_ts, say("this alert"))
        if origin is not None and wrong is not None:
            facts = refusal_facts(origin, wrong, "acknowledge")
            self._record(alert, "access.denied", "refused", now, actor=user, **facts)
            return AckResult(alert, wrong)
        if alert.status == OPEN and alert.acknowledged_by is None:
            denied = self._ack_rule.denial(alert, user)
            if denied is not None:
                self._record(alert, "access.denied", "refused", now, actor=user, **denied[1])
                return AckResult(alert, denied[0])
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
        refusal = why_not_again(current, user)
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
        return OpenAlerts(self._store).open_alerts()

    def summaries(self) -> list[AlertSummary]:
        """Open alerts as `/backup status` shows them."""
        return OpenAlerts(self._store).summaries()

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
