"""Retention's rules: which verified backups to delete and which to keep, and why.

`plan_retention` is pure: from the catalogued verified backups, the configured databases
and the retention settings it decides, for every backup, *delete* or *keep* with a plain
reason. The rules, in order, for a backup older than its database's `retention_days`
(measured from `started_at`):

1. the newest verified backup of a database is always kept, whatever its age;
2. a backup an open restore or drill reads is kept;
3. a backup labelled with one of `keep_labels` is kept until it is `keep_labeled_days` old;
4. a backup whose artifact or manifest is under an S3 Object Lock retention that has not
   expired at `now` is kept, with the date and mode (`locked until DATE (COMPLIANCE)`);
5. otherwise it is deleted.

Only `succeeded` rows are considered (running and failed ones are never touched), backups
of databases that are not configured are left alone, and so are rows written to another
kind of store than the current one. The plan and report values the front ends show are
here too; the service that deletes is in `retention.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backupbot.settings import DatabaseSettings, RetentionSettings
from backupbot.storage.artifacts import ObjectLock
from backupbot.storage.catalog import SUCCEEDED, BackupRecord

LockOf = Callable[[BackupRecord], ObjectLock | None]

DELETE, KEEP = "delete", "keep"
# Why a backup is kept or deleted (`Decision.rule`).
WITHIN_POLICY = "within_policy"
NEWEST = "newest"
IN_USE = "in_use"
LABEL = "label"
EXPIRED = "expired"
UNCONFIGURED = "unconfigured"
OTHER_STORE = "other_store"
LOCKED = "locked"


@dataclass(frozen=True)
class DatabasePolicy:
    name: str
    retention_days: int


@dataclass(frozen=True)
class Decision:
    """What retention does with one verified backup, and why."""

    backup: BackupRecord
    action: str  # delete | keep
    rule: str  # one of the rule constants above
    reason: str  # plain words: "older than 30 days", "newest verified backup of app"
    age: timedelta

    @property
    def delete(self) -> bool:
        return self.action == DELETE

    @property
    def age_days(self) -> int:
        return self.age.days

    def as_json(self) -> dict[str, Any]:
        b = self.backup
        return {
            "id": b.id,
            "database": b.database,
            "action": self.action,
            "rule": self.rule,
            "reason": self.reason,
            "started_at": b.started_at.isoformat(),
            "age_days": round(self.age.total_seconds() / 86400, 2),
            "label": b.label,
            "stored_size": b.stored_size,
            "location": b.location,
        }


@dataclass(frozen=True)
class RetentionPlan:
    """Every considered backup's decision. `policies` are the configured databases in
    scope (configuration order); `decisions` are newest first within each database."""

    now: datetime
    policies: tuple[DatabasePolicy, ...]
    keep_labels: tuple[str, ...]
    keep_labeled_days: int
    decisions: tuple[Decision, ...]

    @property
    def to_delete(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.delete)

    @property
    def kept(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if not d.delete)

    @property
    def bytes_to_free(self) -> int:
        return sum(d.backup.stored_size or 0 for d in self.to_delete)

    def for_database(self, name: str) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.backup.database == name)

    @property
    def unconfigured(self) -> dict[str, int]:
        """Databases with verified backups that are not configured: how many each."""
        counts: dict[str, int] = {}
        for d in self.decisions:
            if d.rule == UNCONFIGURED:
                counts[d.backup.database] = counts.get(d.backup.database, 0) + 1
        return counts

    def as_json(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "databases": [
                {"name": p.name, "retention_days": p.retention_days} for p in self.policies
            ],
            "keep_labels": list(self.keep_labels),
            "keep_labeled_days": self.keep_labeled_days,
            "would_delete": len(self.to_delete),
            "would_free_bytes": self.bytes_to_free,
            "unconfigured": self.unconfigured,
            "decisions": [d.as_json() for d in self.decisions],
        }


@dataclass(frozen=True)
class FailedDeletion:
    decision: Decision
    error: str


@dataclass(frozen=True)
class RetentionReport:
    """What one retention run did."""

    at: datetime
    actor: str
    plan: RetentionPlan
    deleted: tuple[Decision, ...]
    failed: tuple[FailedDeletion, ...]
    skipped: tuple[Decision, ...]  # another run marked them deleted first
    refused: tuple[Decision, ...] = ()  # S3 refused the deletion: Object Lock (kept)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def kept(self) -> int:
        return len(self.plan.kept) + len(self.refused)

    @property
    def locked(self) -> tuple[Decision, ...]:
        """Backups kept because of an Object Lock: planned so, or refused by S3."""
        return tuple(d for d in self.plan.kept if d.rule == LOCKED) + self.refused

    @property
    def freed_bytes(self) -> int:
        return sum(d.backup.stored_size or 0 for d in self.deleted)

    @property
    def did_something(self) -> bool:
        return bool(self.deleted or self.failed)

    def as_json(self) -> dict[str, Any]:
        """A JSON-safe summary; `ok` is False when a deletion failed."""
        return {
            "ok": self.ok,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "deleted": [d.as_json() for d in self.deleted],
            "failed": [{**f.decision.as_json(), "error": f.error} for f in self.failed],
            "skipped": [d.backup.id for d in self.skipped],
            "locked": [d.as_json() for d in self.locked],
            "kept": self.kept,
            "freed_bytes": self.freed_bytes,
            "unconfigured": self.plan.unconfigured,
        }


def keeps_label(label: str | None, keep_labels: Iterable[str]) -> bool:
    """Labels match without regard to case or surrounding spaces (keeping more is safe)."""
    if not label:
        return False
    return label.strip().casefold() in {k.strip().casefold() for k in keep_labels}


def plan_retention(
    backups: Iterable[BackupRecord],
    databases: Sequence[DatabaseSettings | DatabasePolicy],
    settings: RetentionSettings,
    now: datetime,
    *,
    in_use: frozenset[str] = frozenset(),
    store_kind: str | None = None,
    lock_of: LockOf | None = None,
) -> RetentionPlan:
    """Decide delete/keep for every verified backup in `backups` (other rows are ignored).

    `databases` are the configured databases in scope; backups of any other database are
    kept as unconfigured. `in_use`: ids an open restore or drill reads. `store_kind`: rows
    written to another kind of store are kept (None: do not check). `lock_of`: the Object
    Lock on a backup's objects, asked only for backups the other rules would delete.
    """
    policies = tuple(DatabasePolicy(d.name, d.retention_days) for d in databases)
    verified = [b for b in backups if b.status == SUCCEEDED]
    rules = _Rules(
        policies={p.name: p for p in policies},
        newest=_newest_by_database(verified),
        settings=settings,
        now=now,
        in_use=in_use,
        store_kind=store_kind,
        lock_of=lock_of,
    )
    return RetentionPlan(
        now=now,
        policies=policies,
        keep_labels=tuple(settings.keep_labels),
        keep_labeled_days=settings.keep_labeled_days,
        decisions=tuple(rules.decide(b) for b in _newest_first(verified, policies)),
    )


def _newest_by_database(verified: Iterable[BackupRecord]) -> dict[str, BackupRecord]:
    """Each database's newest verified backup (by start, then id)."""
    newest: dict[str, BackupRecord] = {}
    for b in verified:
        current = newest.get(b.database)
        if current is None or (b.started_at, b.id) > (current.started_at, current.id):
            newest[b.database] = b
    return newest


def _newest_first(
    verified: Iterable[BackupRecord], policies: Sequence[DatabasePolicy]
) -> list[BackupRecord]:
    """The backups grouped by database (configured ones in configuration order, then the
    others by name), newest first within each database."""
    order = {p.name: i for i, p in enumerate(policies)}
    ranked = sorted(
        verified,
        key=lambda b: (order.get(b.database, len(order)), b.database, b.started_at, b.id),
    )
    grouped: dict[str, list[BackupRecord]] = {}
    for b in ranked:
        grouped.setdefault(b.database, []).insert(0, b)
    return [b for rows in grouped.values() for b in rows]


@dataclass(frozen=True)
class _Rules:
    """The retention rules, in order, for one plan."""

    policies: dict[str, DatabasePolicy]
    newest: dict[str, BackupRecord]
    settings: RetentionSettings
    now: datetime
    in_use: frozenset[str]
    store_kind: str | None
    lock_of: LockOf | None = None

    def decide(self, b: BackupRecord) -> Decision:
        decision = self._decide(b)
        if not decision.delete or self.lock_of is None:
            return decision
        lock = self.lock_of(b)
        if lock is None or lock.until <= self.now:
            return decision
        return Decision(b, KEEP, LOCKED, lock.describe(), decision.age)

    def _decide(self, b: BackupRecord) -> Decision:
        age = self.now - b.started_at
        policy = self.policies.get(b.database)
        if policy is None:
            return Decision(
                b, KEEP, UNCONFIGURED, f"{b.database} is not configured; left alone", age
            )
        days = policy.retention_days
        if age <= timedelta(days=days):
            return Decision(b, KEEP, WITHIN_POLICY, f"within {days} days", age)
        if self.newest[b.database].id == b.id:
            return Decision(b, KEEP, NEWEST, f"newest verified backup of {b.database}", age)
        if b.id in self.in_use:
            return Decision(b, KEEP, IN_USE, "an open restore or drill uses it", age)
        if self.store_kind is not None and b.store != self.store_kind:
            return Decision(
                b,
                KEEP,
                OTHER_STORE,
                f"in the {b.store} store, not the configured {self.store_kind} store; left alone",
                age,
            )
        if keeps_label(b.label, self.settings.keep_labels):
            return self._labelled(b, age, days)
        return Decision(b, DELETE, EXPIRED, f"older than {days} days", age)

    def _labelled(self, b: BackupRecord, age: timedelta, days: int) -> Decision:
        """A backup past its database's retention that carries a kept label."""
        kept_days = self.settings.keep_labeled_days
        if age <= timedelta(days=kept_days):
            return Decision(b, KEEP, LABEL, f"label {b.label} kept {kept_days} days", age)
        reason = f"older than {days} days (label {b.label} is kept {kept_days} days)"
        return Decision(b, DELETE, EXPIRED, reason, age)
