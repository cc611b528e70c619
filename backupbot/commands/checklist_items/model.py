"""The checklist's vocabulary: items, policy, evidence, verdicts, and the small helpers
every item uses. Pure data and functions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from backupbot.commands.provider_facts import ProviderFacts
from backupbot.phrases import Name, Phrase, from_json, say, to_json
from backupbot.settings import Settings
from backupbot.storage.checklists import (
    BackupFact,
    DrillFact,
    IncidentFact,
)
from backupbot.storage.operation_notes import OperationNote

ITEMS: tuple[tuple[str, str], ...] = (
    ("backups", "Automated backups running"),
    ("retention", "Retention policy enforced"),
    ("drill", "Test restore completed successfully"),
    ("size", "Backup size trending correctly"),
    ("corruption", "No corruption warnings"),
)
ITEM_KEYS: tuple[str, ...] = tuple(k for k, _ in ITEMS)
ITEM_TITLES: dict[str, str] = dict(ITEMS)

RETENTION_RUN = "retention.run"
CORRUPTION_ACTIONS = ("backup.failed", "restore.verified", "restore.failed")
VERIFICATION_ERROR_TYPES = frozenset({"VerificationFailed", "_VerificationMismatch"})
# A drill whose restore failed at this stage failed verification (row counts). Checksum
# failures while downloading are the restore engine's `restore.failed` VerificationFailed.
VERIFICATION_STAGES = frozenset({"verify"})

OK, LOOK = "✅", "⚠️"
DASH, TIMES = "\u2013", "\u00d7"  # en dash, multiplication sign
MAX_LISTED = 8  # offending days, backups or events listed per item (the rest are counted)


def item_title(key: str) -> str:
    return f"{ITEM_KEYS.index(key) + 1}. {ITEM_TITLES[key]}"


# -- policy and evidence ----------------------------------------------------------------------


@dataclass(frozen=True)
class DatabasePolicy:
    name: str
    retention_days: int = 30
    rto_minutes: int | None = None  # its RTO target (None: each drill's own)


@dataclass(frozen=True)
class ChecklistPolicy:
    databases: tuple[DatabasePolicy, ...]
    lookback_days: int = 30
    size_drop_ratio: float = 0.5
    size_jump_ratio: float = 3.0
    keep_labels: tuple[str, ...] = ("pre-deploy", "pre-restore")
    keep_labeled_days: int = 90

    @classmethod
    def from_settings(cls, settings: Settings) -> ChecklistPolicy:
        c = settings.checklist
        return cls(
            databases=tuple(
                DatabasePolicy(
                    d.name, d.retention_days, d.rto_minutes or settings.restore.rto_minutes
                )
                for d in settings.databases
            ),
            lookback_days=c.lookback_days,
            size_drop_ratio=c.size_drop_ratio,
            size_jump_ratio=c.size_jump_ratio,
            keep_labels=tuple(settings.retention.keep_labels),
            keep_labeled_days=settings.retention.keep_labeled_days,
        )


@dataclass(frozen=True)
class ChecklistEvidence:
    """What the bot's records say, as plain facts.

    `backups`: verified backups in the window plus every verified backup still kept.
    `incidents`: `CORRUPTION_ACTIONS` records in the window. `retention_due_by`: a
    retention run older than this is late (None: no expectation). `drills_since`: how far
    back a drill (or a staging restore noted with `/backup note`) counts (None: the
    window's start). `recent_drills`: each database's last drills whatever their age,
    for the RTO record's trend.
    """

    now: datetime
    backups: tuple[BackupFact, ...] = ()
    drills: tuple[DrillFact, ...] = ()
    recent_drills: tuple[DrillFact, ...] = ()  # each database's last drills, any age (trend)
    incidents: tuple[IncidentFact, ...] = ()
    last_retention_run: IncidentFact | None = None
    retention_due_by: datetime | None = None
    drills_since: datetime | None = None
    staging_restores: tuple[OperationNote, ...] = ()  # noted by hand, since `drills_since`
    recovery: tuple[ProviderFacts, ...] = ()  # each provider-backed database's own recovery


def window_start(now: datetime, lookback_days: int) -> datetime:
    """Midnight UTC `lookback_days` days before today."""
    today = now.astimezone(UTC).date()
    return datetime.combine(today - timedelta(days=lookback_days), time(0), UTC)


def review_days(now: datetime, lookback_days: int) -> list[date]:
    """The whole UTC days of the window, oldest first (today is not one of them)."""
    first = window_start(now, lookback_days).date()
    return [first + timedelta(days=i) for i in range(lookback_days)]


def period_of(now: datetime, timezone: str = "UTC") -> str:
    return now.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")


def previous_month_start(now: datetime, timezone: str = "UTC") -> datetime:
    local = now.astimezone(ZoneInfo(timezone))
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    previous = (first - timedelta(days=1)).replace(day=1)
    return previous.astimezone(UTC)


def message_link(channel: str, ts: str) -> str:
    """A link to a Slack message that works without an API call."""
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"


def compact_days(days: Iterable[date]) -> str:
    """Consecutive days as ranges: "Nov 3-5, Nov 9, Nov 30-Dec 1" (with en dashes)."""
    runs: list[list[date]] = []
    for d in sorted(set(days)):
        if runs and d - runs[-1][1] == timedelta(days=1):
            runs[-1][1] = d
        else:
            runs.append([d, d])
    parts = []
    for a, b in runs:
        if a == b:
            parts.append(short_day(a))
        elif (a.year, a.month) == (b.year, b.month):
            parts.append(f"{short_day(a)}{DASH}{b.day}")
        else:
            parts.append(f"{short_day(a)}{DASH}{short_day(b)}")
    return ", ".join(parts)


def short_day(d: date) -> str:
    return f"{d:%b} {d.day}"


def with_more(shown: list[Phrase], total: int) -> list[Phrase]:
    return shown if total <= len(shown) else [*shown, say(f"and {total - len(shown)} more")]


def db_name(name: str) -> Name:
    return Name(name)


# -- evaluation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemResult:
    """One item's verdict: `summary` is short plain text (it sits next to the checkbox),
    `lines` the evidence as phrases, `details` the JSON-safe facts behind them."""

    key: str
    ok: bool
    summary: str
    lines: tuple[Phrase, ...]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return item_title(self.key)

    @property
    def mark(self) -> str:
        return OK if self.ok else LOOK

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "ok": self.ok,
            "summary": self.summary,
            "lines": [to_json(line) for line in self.lines],
            "details": self.details,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ItemResult:
        return cls(
            key=str(data["key"]),
            ok=bool(data["ok"]),
            summary=str(data.get("summary", "")),
            lines=tuple(from_json(x) for x in data.get("lines", ())),
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class ChecklistEvaluation:
    at: datetime
    since: datetime
    items: tuple[ItemResult, ...]

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.items)

    @property
    def needs_look(self) -> list[str]:
        return [i.key for i in self.items if not i.ok]

    def item(self, key: str) -> ItemResult:
        return next(i for i in self.items if i.key == key)

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "since": self.since.isoformat(),
            "items": [i.as_json() for i in self.items],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChecklistEvaluation | None:
        """The stored evaluation, or None for a checklist not evaluated yet."""
        if not data or "items" not in data:
            return None
        return cls(
            at=datetime.fromisoformat(data["at"]),
            since=datetime.fromisoformat(data["since"]),
            items=tuple(ItemResult.from_json(i) for i in data["items"]),
        )

    def verdicts(self) -> dict[str, dict[str, Any]]:
        """Compact per-item verdicts for incident records."""
        return {i.key: {"ok": i.ok, "summary": i.summary} for i in self.items}
