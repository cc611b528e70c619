"""`status`: where each database's backups stand, and what is worrying, in plain words.

Besides the catalog, a report carries what the schedules produce: the next scheduled
backup, the last restore drills (the RTO record), open alerts and who acknowledged them,
and the month's checklist. Those arrive as small summaries, so this module stays a pure
function of its inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from backupbot.commands import humanize
from backupbot.commands.migrations import failed_warning
from backupbot.commands.provider_facts import ProviderFacts
from backupbot.commands.rto_record import RtoLine, rto_line
from backupbot.commands.schedule import StaleRule, as_stale_rule
from backupbot.commands.trends import SPARK_POINTS, Trend, trend
from backupbot.phrases import Command, Phrase, say
from backupbot.storage.catalog import FAILED, SUCCEEDED, BackupCatalog, BackupRecord
from backupbot.storage.drills import DrillRecord
from backupbot.storage.restore_record import RestoreRecord


@dataclass(frozen=True)
class DrillSummary:
    status: str  # running | passed | failed
    started_at: datetime
    total_seconds: float | None
    rto_minutes: int
    error: str | None = None
    error_phrase: Phrase | None = None  # `error` with its facts, for rendering
    reviewed_by: str | None = None  # who reviewed the result (the drill message's button)

    @classmethod
    def from_record(cls, r: DrillRecord) -> DrillSummary:
        return cls(
            status=r.status,
            started_at=r.started_at,
            total_seconds=r.total_seconds,
            rto_minutes=r.rto_minutes,
            error=r.error,
            error_phrase=r.error_phrase if r.error else None,
            reviewed_by=r.reviewed_by,
        )

    @property
    def within_rto(self) -> bool:
        return self.total_seconds is not None and self.total_seconds <= self.rto_minutes * 60


@dataclass(frozen=True)
class AlertSummary:
    id: str
    condition: str
    database: str | None
    summary: Phrase | str
    opened_at: datetime
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None


@dataclass(frozen=True)
class ChecklistSummary:
    period: str  # "2026-12"
    posted_at: datetime
    ticked: int
    items: int
    signed_off_by: str | None = None
    signed_off_at: datetime | None = None
    channel: str | None = None  # where its message is, once posted
    message_ts: str | None = None


@dataclass(frozen=True)
class DatabaseStatus:
    name: str
    provider: str
    now: datetime
    last_success: BackupRecord | None
    last_failure: BackupRecord | None
    running: BackupRecord | None
    kept: int
    warnings: list[Phrase] = field(default_factory=list)
    next_backup: datetime | None = None
    timezone: str = "UTC"  # its backup schedule's zone, in which `next_backup` is shown
    drills: list[DrillSummary] = field(default_factory=list)  # newest first, at most 7
    alerts: list[AlertSummary] = field(default_factory=list)  # open, about this database
    rto_minutes: int | None = None  # its RTO target (None: the latest drill's)
    trend: Trend = field(default_factory=Trend)  # the last stored backups' sizes, durations
    recovery: ProviderFacts | None = None  # its provider's own recovery, with a section

    @property
    def healthy(self) -> bool:
        return not self.warnings

    @property
    def next_backup_text(self) -> str:
        """The next scheduled backup in its schedule's zone and in UTC, or "none"."""
        return humanize.zoned(self.next_backup, self.timezone) if self.next_backup else "none"

    @property
    def last_drill(self) -> DrillSummary | None:
        return next((d for d in self.drills if d.status != "running"), None)

    @property
    def rto(self) -> RtoLine:
        """The runbook's RTO line: target, last tested, result, duration, reviewer, trend."""
        return rto_line(self.name, self.rto_minutes, self.drills)


@dataclass(frozen=True)
class BotStatus:
    """What is not about one database: the month's checklist and global alerts."""

    checklist: ChecklistSummary | None = None
    alerts: list[AlertSummary] = field(default_factory=list)


def drill_warning(drill: DrillSummary | None) -> Phrase | None:
    if drill is None or drill.status == "passed":
        return None
    return say(
        "The last restore drill failed: {error}",
        error=drill.error_phrase or drill.error or "see its message in the channel",
    )


def backup_warnings(
    name: str, ok: BackupRecord | None, bad: BackupRecord | None, rule: StaleRule, now: datetime
) -> list[Phrase]:
    """No verified backup, none recent enough, or a failed attempt since the last good."""
    warnings: list[Phrase] = []
    if ok is None:
        warnings.append(say("No verified backup yet. Run {cmd}.", cmd=Command("now", name)))
    elif rule.is_stale(ok.started_at, now):
        warnings.append(
            say(
                "No verified backup {within}: the newest is {age}. Check the schedule or "
                "run {cmd}.",
                within=rule.describe(now),
                age=humanize.age(ok.started_at, now),
                cmd=Command("now", name),
            )
        )
    if bad is not None and (ok is None or bad.started_at > ok.started_at):
        warnings.append(say("The latest backup attempt failed: {error}", error=bad.error or "?"))
    return warnings


def database_status(
    catalog: BackupCatalog,
    name: str,
    provider: str,
    now: datetime,
    stale_after: StaleRule | timedelta = timedelta(hours=26),
    *,
    next_backup: datetime | None = None,
    timezone: str = "UTC",
    drills: Sequence[DrillSummary] = (),
    alerts: Sequence[AlertSummary] = (),
    rto_minutes: int | None = None,
    recovery: ProviderFacts | None = None,
    restored: RestoreRecord | None = None,
) -> DatabaseStatus:
    """Where one database stands at `now`. `stale_after`: when its newest verified backup
    is stale (its schedule's rule, or a plain maximum age). `recovery`: what its provider
    says of its own recovery (its warnings are the database's). `restored`: its newest
    in-place restore (what the database's Prisma history is since, if newer)."""
    ok = catalog.latest(name, SUCCEEDED)
    bad = catalog.latest(name, FAILED)
    warnings = backup_warnings(name, ok, bad, as_stale_rule(stale_after), now)
    finished = next((d for d in drills if d.status != "running"), None)
    if (warning := drill_warning(finished)) is not None:
        warnings.append(warning)
    if recovery is not None:
        warnings.extend(recovery.warnings)
    if (failed := failed_warning(name, ok, restored)) is not None:
        warnings.append(failed)
    return DatabaseStatus(
        name=name,
        provider=provider,
        now=now,
        last_success=ok,
        last_failure=bad,
        running=catalog.running(name),
        kept=catalog.count(name, SUCCEEDED),
        warnings=warnings,
        next_backup=next_backup,
        timezone=timezone,
        drills=list(drills)[:7],
        alerts=list(alerts),
        rto_minutes=rto_minutes,
        trend=trend(catalog.stored(name, limit=SPARK_POINTS)),
        recovery=recovery,
    )


def status_report(
    catalog: BackupCatalog,
    databases: Sequence[tuple[str, str]],
    now: datetime,
    stale_after: StaleRule | timedelta = timedelta(hours=26),
    *,
    stale_afters: Mapping[str, StaleRule | timedelta] | None = None,
    next_backups: Mapping[str, datetime | None] | None = None,
    timezones: Mapping[str, str] | None = None,
    drills: Mapping[str, Sequence[DrillSummary]] | None = None,
    alerts: Sequence[AlertSummary] = (),
    rto_minutes: Mapping[str, int] | None = None,
    recovery: Mapping[str, ProviderFacts] | None = None,
    restored: Mapping[str, RestoreRecord | None] | None = None,
) -> list[DatabaseStatus]:
    """Status of each `(name, provider)` given, in configuration order."""
    return [
        database_status(
            catalog,
            n,
            p,
            now,
            (stale_afters or {}).get(n, stale_after),
            next_backup=(next_backups or {}).get(n),
            timezone=(timezones or {}).get(n, "UTC"),
            drills=(drills or {}).get(n, ()),
            alerts=[a for a in alerts if a.database == n],
            rto_minutes=(rto_minutes or {}).get(n),
            recovery=(recovery or {}).get(n),
            restored=(restored or {}).get(n),
        )
        for n, p in databases
    ]
