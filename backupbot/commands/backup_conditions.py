"""`BackupConditions`: the alert conditions the backup catalog decides (a failed backup, a
failed verification, a database without a recent verified backup), with the evidence."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from backupbot.commands import humanize
from backupbot.commands.conditions import BACKUP_FAILED, STALE, VERIFICATION_FAILED, Finding
from backupbot.commands.schedule import StaleRule, as_stale_rule
from backupbot.phrases import Command, Name, say
from backupbot.storage.alerts import AttemptFact, BackupFacts

VERIFICATION_ERROR_TYPES = frozenset({"VerificationFailed"})
MAX_ERROR_CHARS = 600


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
        summary = say(
            "The latest backup of {db} failed (id {id}, {at}): {error}{more} Fix the cause "
            "and run {cmd}; this alert resolves when a backup succeeds.",
            db=Name(db),
            id=Name(last.id),
            at=humanize.utc(last.finished_at or last.started_at),
            error=_error(last),
            more=f"{more} {since}." if more else "",
            cmd=Command("now", db),
        )
        return Finding(BACKUP_FAILED, db, summary, _evidence(failures, good))

    def _verification(
        self, db: str, failures: list[AttemptFact], good: AttemptFact | None
    ) -> Finding:
        last = failures[0]
        summary = say(
            "A backup of {db} failed verification (id {id}, {at}): {error} The stored copy "
            "did not match what was written, so it was not kept; check the backup storage, "
            "then run {cmd}.",
            db=Name(db),
            id=Name(last.id),
            at=humanize.utc(last.finished_at or last.started_at),
            error=_error(last),
            cmd=Command("now", db),
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
            summary = say(
                "No verified backup of {db} {rule}: the newest is {age} ({at}, id {id}). "
                "Check the schedule and the last attempts, or run {cmd}.",
                db=Name(db),
                rule=rule.describe(now),
                age=humanize.age(good.started_at, now),
                at=humanize.utc(good.started_at),
                id=Name(good.id),
                cmd=Command("now", db),
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
        summary = say(
            "{db} has never had a verified backup, and backupbot has looked after it since "
            "{at}. Check the schedule and the last attempts, or run {cmd}.",
            db=Name(db),
            at=humanize.utc(first),
            cmd=Command("now", db),
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
