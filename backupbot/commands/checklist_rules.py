"""The monthly Backup Verification Checklist's rules: the runbook's five items evaluated
from the bot's own records.

`evaluate(evidence, policy)` is a pure function over plain facts (backups, drills,
incidents, the last retention run), so good and bad months are table-tested without a
database; `gather_evidence` reads those facts from the state database. The review window
is the `lookback_days` whole UTC days before `now` (today is still running and does not
count for "a backup on each day"). The test-restore item looks further back: a drill since
the start of the previous month also counts, because the checklist is posted on the 1st
and the month's drill (first Monday) has not happened yet then.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from backupbot.commands import humanize
from backupbot.commands.retention import keeps_label
from backupbot.commands.schedule import ScheduledJob
from backupbot.phrases import Command, MessageLink, Name, Phrase, from_json, join, say, to_json
from backupbot.settings import Settings
from backupbot.storage.checklists import (
    BackupFact,
    ChecklistEvidenceQueries,
    DrillFact,
    IncidentFact,
)

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
            databases=tuple(DatabasePolicy(d.name, d.retention_days) for d in settings.databases),
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
    back a drill counts (None: the window's start).
    """

    now: datetime
    backups: tuple[BackupFact, ...] = ()
    drills: tuple[DrillFact, ...] = ()
    incidents: tuple[IncidentFact, ...] = ()
    last_retention_run: IncidentFact | None = None
    retention_due_by: datetime | None = None
    drills_since: datetime | None = None


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
            parts.append(_day(a))
        elif (a.year, a.month) == (b.year, b.month):
            parts.append(f"{_day(a)}{DASH}{b.day}")
        else:
            parts.append(f"{_day(a)}{DASH}{_day(b)}")
    return ", ".join(parts)


def _day(d: date) -> str:
    return f"{d:%b} {d.day}"


def _more(shown: list[Phrase], total: int) -> list[Phrase]:
    return shown if total <= len(shown) else [*shown, say(f"and {total - len(shown)} more")]


def _db(name: str) -> Name:
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


def evaluate(evidence: ChecklistEvidence, policy: ChecklistPolicy) -> ChecklistEvaluation:
    """The five items' verdicts and evidence. Pure: the same facts give the same answer."""
    since = window_start(evidence.now, policy.lookback_days)
    return ChecklistEvaluation(
        at=evidence.now,
        since=since,
        items=(
            _backups_item(evidence, policy),
            _retention_item(evidence, policy),
            _drill_item(evidence, policy, evidence.drills_since or since),
            _size_item(evidence, policy, since),
            _corruption_item(evidence, since),
        ),
    )


def _backups_item(ev: ChecklistEvidence, policy: ChecklistPolicy) -> ItemResult:
    days = review_days(ev.now, policy.lookback_days)
    n = len(days)
    lines: list[Phrase] = []
    missing_by_db: dict[str, list[date]] = {}
    for db in policy.databases:
        covered = {b.started_at.astimezone(UTC).date() for b in ev.backups if b.database == db.name}
        missing = [d for d in days if d not in covered]
        if missing:
            missing_by_db[db.name] = missing
            lines.append(
                say(
                    "{mark} {db}: a verified backup on {k} of the last {n} days; none on {days}",
                    mark=LOOK,
                    db=_db(db.name),
                    k=n - len(missing),
                    n=n,
                    days=compact_days(missing),
                )
            )
        else:
            lines.append(
                say(
                    "{mark} {db}: a verified backup on each of the last {n} days",
                    mark=OK,
                    db=_db(db.name),
                    n=n,
                )
            )
    if missing_by_db:
        summary = "Days without a backup: " + ", ".join(
            f"{name} {len(m)}" for name, m in missing_by_db.items()
        )
    else:
        summary = f"A verified backup every day for {len(policy.databases)} database(s)"
    return ItemResult(
        "backups",
        not missing_by_db,
        summary,
        tuple(lines),
        {
            "days": n,
            "first_day": days[0].isoformat() if days else None,
            "missing": {k: [d.isoformat() for d in v] for k, v in missing_by_db.items()},
        },
    )


def _retention_item(ev: ChecklistEvidence, policy: ChecklistPolicy) -> ItemResult:
    last = ev.last_retention_run
    lines: list[Phrase] = []
    run_ok = True
    if last is None:
        run_ok = False
        lines.append(say(f"{LOOK} Retention has never run: old backups are not being deleted."))
    elif last.outcome == "failed":
        run_ok = False
        why = last.details.get("error")
        lines.append(
            say(f"{LOOK} The last retention run ({humanize.utc(last.at)}) failed")
            + (say(": {why}", why=str(why)) if why else ".")
        )
    elif ev.retention_due_by is not None and last.at < ev.retention_due_by:
        run_ok = False
        lines.append(
            say(
                f"{LOOK} The last retention run was {humanize.utc(last.at)}; the next one was "
                f"due by {humanize.utc(ev.retention_due_by)} and has not happened."
            )
        )
    else:
        lines.append(say(f"{OK} Last retention run: {humanize.utc(last.at)}."))
    ref = last.at if last is not None else ev.now
    kept = [b for b in ev.backups if b.deleted_at is None]
    overdue_by_db: dict[str, list[BackupFact]] = {}
    for db in policy.databases:
        mine = sorted((b for b in kept if b.database == db.name), key=lambda b: b.started_at)
        newest = mine[-1].id if mine else None
        cutoff = ref - timedelta(days=db.retention_days)
        label_cutoff = ref - timedelta(days=policy.keep_labeled_days)
        overdue: list[BackupFact] = []
        on_purpose: list[Phrase] = []
        for b in mine:
            if b.started_at >= cutoff:
                continue
            if b.id == newest:
                on_purpose.append(say("the newest verified backup"))
            elif keeps_label(b.label, policy.keep_labels) and b.started_at >= label_cutoff:
                on_purpose.append(say("label {label}", label=Name(b.label or "")))
            else:
                overdue.append(b)
        if overdue:
            overdue_by_db[db.name] = overdue
            listed = [
                say("{id} ({day})", id=Name(b.id), day=f"{b.started_at:%Y-%m-%d}")
                for b in overdue[:MAX_LISTED]
            ]
            lines.append(
                say(
                    "{mark} {db}: {k} backup(s) older than {days} days are still kept: {listed}",
                    mark=LOOK,
                    db=_db(db.name),
                    k=len(overdue),
                    days=db.retention_days,
                    listed=join(_more(listed, len(overdue))),
                )
            )
        else:
            extra = say(" (kept on purpose: {why})", why=join(on_purpose)) if on_purpose else ""
            lines.append(
                say(
                    "{mark} {db}: nothing older than {days} days{extra}",
                    mark=OK,
                    db=_db(db.name),
                    days=db.retention_days,
                    extra=extra,
                )
            )
    ok = run_ok and not overdue_by_db
    if last is None:
        summary = "Retention has never run"
    elif overdue_by_db:
        count = sum(len(v) for v in overdue_by_db.values())
        summary = f"{count} backup(s) older than the policy"
    elif last.outcome == "failed":
        summary = f"The last retention run ({_day(last.at.date())}) failed"
    elif not run_ok:
        summary = f"Retention has not run since {_day(last.at.date())}"
    else:
        summary = f"Last run {humanize.utc(last.at)}; nothing past the policy"
    return ItemResult(
        "retention",
        ok,
        summary,
        tuple(lines),
        {
            "last_run": last.at.isoformat() if last else None,
            "last_run_outcome": last.outcome if last else None,
            "due_by": ev.retention_due_by.isoformat() if ev.retention_due_by else None,
            "overdue": {k: [b.id for b in v] for k, v in overdue_by_db.items()},
        },
    )


def _drill_link(d: DrillFact) -> str | None:
    return message_link(d.channel, d.message_ts) if d.channel and d.message_ts else None


def _message_ref(d: DrillFact, words: str) -> Phrase | str:
    """` · ` and a link to the drill's message, when it has one."""
    if not (d.channel and d.message_ts):
        return ""
    link = MessageLink(words, d.channel, d.message_ts, message_link(d.channel, d.message_ts))
    return say(" · {link}", link=link)


def _drill_item(ev: ChecklistEvidence, policy: ChecklistPolicy, since: datetime) -> ItemResult:
    details: dict[str, dict[str, Any] | None]
    lines: list[Phrase] = []
    details = {}
    missing: list[str] = []
    failing: list[str] = []
    for db in policy.databases:
        finished = sorted(
            (
                d
                for d in ev.drills
                if d.database == db.name and d.status != "running" and d.started_at >= since
            ),
            key=lambda d: d.started_at,
            reverse=True,
        )
        if not finished:
            missing.append(db.name)
            lines.append(
                say(
                    "{mark} {db}: no restore drill since {since}; run {cmd}",
                    mark=LOOK,
                    db=_db(db.name),
                    since=f"{since:%Y-%m-%d}",
                    cmd=Command("drill", db.name),
                )
            )
            details[db.name] = None
            continue
        d = finished[0]
        link = _drill_link(d)
        ref = _message_ref(d, "drill message")
        took = (
            humanize.duration(timedelta(seconds=d.total_seconds))
            if d.total_seconds is not None
            else "?"
        )
        rto = f" (RTO {d.rto_minutes} min)" if d.rto_minutes else ""
        over_rto = (
            d.rto_minutes is not None
            and d.total_seconds is not None
            and d.total_seconds > d.rto_minutes * 60
        )
        details[db.name] = {
            "drill_id": d.id,
            "status": d.status,
            "at": d.started_at.isoformat(),
            "total_seconds": d.total_seconds,
            "link": link,
        }
        if d.status == "passed" and not over_rto:
            lines.append(
                say(
                    "{mark} {db}: drill passed {at} in {took}{rto}{ref}",
                    mark=OK,
                    db=_db(db.name),
                    at=humanize.utc(d.started_at),
                    took=took,
                    rto=rto,
                    ref=ref,
                )
            )
        elif d.status == "passed":
            failing.append(db.name)
            lines.append(
                say(
                    "{mark} {db}: drill passed {at} but took {took}, over the RTO of "
                    "{rto} min{ref}",
                    mark=LOOK,
                    db=_db(db.name),
                    at=humanize.utc(d.started_at),
                    took=took,
                    rto=d.rto_minutes or 0,
                    ref=ref,
                )
            )
        else:
            failing.append(db.name)
            earlier = next((x for x in finished[1:] if x.status == "passed"), None)
            before = (
                f" (an earlier drill passed {humanize.utc(earlier.started_at)})" if earlier else ""
            )
            why = say(": {error}", error=d.error) if d.error else ""
            lines.append(
                say(
                    "{mark} {db}: the latest drill ({at}) failed{why}{before}{ref}",
                    mark=LOOK,
                    db=_db(db.name),
                    at=humanize.utc(d.started_at),
                    why=why,
                    before=before,
                    ref=ref,
                )
            )
    if missing or failing:
        parts = ([f"no drill: {', '.join(missing)}"] if missing else []) + (
            [f"failed or slow: {', '.join(failing)}"] if failing else []
        )
        summary = "; ".join(parts)
        summary = summary[:1].upper() + summary[1:]
    else:
        summary = f"Drill passed for {len(policy.databases)} database(s)"
    return ItemResult(
        "drill",
        not (missing or failing),
        summary,
        tuple(lines),
        {"since": since.isoformat(), "drills": details},
    )


def _size_item(ev: ChecklistEvidence, policy: ChecklistPolicy, since: datetime) -> ItemResult:
    lines: list[Phrase] = []
    details = {}
    bad: list[str] = []
    for db in policy.databases:
        newest_of_day: dict[date, BackupFact] = {}
        for b in ev.backups:
            if b.database != db.name or b.stored_size is None or b.started_at < since:
                continue
            day = b.started_at.astimezone(UTC).date()
            if day not in newest_of_day or b.started_at > newest_of_day[day].started_at:
                newest_of_day[day] = b
        days = sorted(newest_of_day)
        sizes = [(d, int(newest_of_day[d].stored_size or 0)) for d in days]
        if len(sizes) < 2:
            lines.append(
                say(
                    "{mark} {db}: fewer than two days with a verified backup; nothing to compare",
                    mark=OK,
                    db=_db(db.name),
                )
            )
            details[db.name] = {"days": len(sizes), "offending": []}
            continue
        offending = []
        for (_pd, prev), (day, cur) in pairwise(sizes):
            if prev <= 0:
                continue
            ratio = cur / prev
            if ratio < policy.size_drop_ratio or ratio > policy.size_jump_ratio:
                offending.append((day, prev, cur, ratio))
        first, last = sizes[0][1], sizes[-1][1]
        low, high = min(s for _d, s in sizes), max(s for _d, s in sizes)
        trend = (
            f"{humanize.size(first)} → {humanize.size(last)} over {len(sizes)} days "
            f"(smallest {humanize.size(low)}, largest {humanize.size(high)})"
        )
        details[db.name] = {
            "days": len(sizes),
            "first": first,
            "last": last,
            "offending": [
                {"day": d.isoformat(), "from": p, "to": c, "ratio": round(r, 3)}
                for d, p, c, r in offending
            ],
        }
        if not offending:
            lines.append(say("{mark} {db}: {trend}", mark=OK, db=_db(db.name), trend=trend))
            continue
        bad.append(db.name)
        shown = [
            say(
                f"{_day(d)}: {humanize.size(p)} → {humanize.size(c)} ({r:.2f}{TIMES}, "
                + (
                    f"a drop below {policy.size_drop_ratio:g}{TIMES}"
                    if r < policy.size_drop_ratio
                    else f"a jump above {policy.size_jump_ratio:g}{TIMES}"
                )
                + ")"
            )
            for d, p, c, r in offending[:MAX_LISTED]
        ]
        lines.append(
            say("{mark} {db}: {trend}; ", mark=LOOK, db=_db(db.name), trend=trend)
            + join(_more(shown, len(offending)), "; ")
        )
    summary = (
        f"Size drop or jump: {', '.join(bad)}"
        if bad
        else f"No drop below {policy.size_drop_ratio:g}{TIMES} or jump above "
        f"{policy.size_jump_ratio:g}{TIMES} day over day"
    )
    return ItemResult("size", not bad, summary, tuple(lines), {"databases": details})


@dataclass(frozen=True)
class _Event:
    at: datetime
    database: str | None
    what: Phrase  # "backup 1a2b3c4d", "restore r0a1b2c3", "drill d1a2b3c4"
    detail: str
    ref: Phrase | str = ""


def _incident_event(i: IncidentFact) -> tuple[str, _Event] | None:
    error_type = i.details.get("error_type")
    restore_id = i.details.get("restore_id")
    if i.action == "backup.failed" and error_type == "VerificationFailed":
        detail = str(i.details.get("error") or "verification of the stored copy failed")
        return f"backup:{i.backup_id or i.id}", _Event(
            i.at, i.database, say("backup {id}", id=Name(str(i.backup_id))), detail
        )
    if i.action == "restore.verified" and i.outcome == "failed":
        mismatches = i.details.get("mismatches") or []
        detail = f"row counts differ from the backup in {len(mismatches)} table(s)"
        return f"restore:{restore_id or i.id}", _Event(
            i.at, i.database, say("restore {id}", id=Name(str(restore_id))), detail
        )
    if i.action == "restore.failed" and error_type in VERIFICATION_ERROR_TYPES:
        detail = str(i.details.get("error") or "verification failed")
        return f"restore:{restore_id or i.id}", _Event(
            i.at, i.database, say("restore {id}", id=Name(str(restore_id))), detail
        )
    return None


def _drill_verification_failed(d: DrillFact) -> bool:
    return d.status == "failed" and (
        (d.failed_stage or "") in VERIFICATION_STAGES
        or (d.error_type or "") in VERIFICATION_ERROR_TYPES
    )


def _corruption_item(ev: ChecklistEvidence, since: datetime) -> ItemResult:
    events: dict[str, _Event] = {}
    for i in ev.incidents:
        if i.at < since:
            continue
        found = _incident_event(i)
        if found is not None and found[0] not in events:
            events[found[0]] = found[1]
    for d in ev.drills:
        if d.started_at < since or not _drill_verification_failed(d):
            continue
        key = f"restore:{d.restore_id}" if d.restore_id else f"drill:{d.id}"
        detail = d.error or "the drill's verification failed"
        what = say("drill {id}", id=Name(d.id))
        events[key] = _Event(d.started_at, d.database, what, detail, _message_ref(d, "message"))
    ordered = sorted(events.values(), key=lambda e: e.at)
    if not ordered:
        line = say(
            "{mark} No checksum, {list} or row-count verification failures since {since}.",
            mark=OK,
            list=Name("pg_restore --list"),
            since=f"{since:%Y-%m-%d}",
        )
        return ItemResult(
            "corruption",
            True,
            f"No verification failures since {_day(since.date())}",
            (line,),
            {"events": []},
        )
    shown = []
    for e in ordered[:MAX_LISTED]:
        where = say(" {db}", db=_db(e.database)) if e.database else ""
        shown.append(
            say(
                "{mark} {at}{where} {what}: {detail}{ref}",
                mark=LOOK,
                at=humanize.utc(e.at),
                where=where,
                what=e.what,
                detail=e.detail,
                ref=e.ref,
            )
        )
    return ItemResult(
        "corruption",
        False,
        f"{len(ordered)} verification failure(s) since {_day(since.date())}",
        tuple(_more(shown, len(ordered))),
        {
            "events": [
                {"at": e.at.isoformat(), "database": e.database, "what": str(e.what)}
                for e in ordered
            ]
        },
    )


# -- gathering --------------------------------------------------------------------------------


def retention_due_by(settings: Settings, now: datetime) -> datetime | None:
    """The retention run should have happened at least once since this time: the
    second-newest firing of its cron (a full cycle of slack for a late or slow run)."""
    own = settings.schedules
    job = ScheduledJob("retention", "retention", own.retention, own.timezone)
    newest = job.previous_fire(now)
    return job.previous_fire(newest - timedelta(microseconds=1)) if newest else None


def gather_evidence(
    queries: ChecklistEvidenceQueries, settings: Settings, now: datetime
) -> ChecklistEvidence:
    """The facts `evaluate` needs, read from the state database."""
    since = window_start(now, settings.checklist.lookback_days)
    drills_since = min(since, previous_month_start(now, settings.schedules.timezone))
    return ChecklistEvidence(
        now=now,
        backups=tuple(queries.verified_backups(since)),
        drills=tuple(queries.drills(drills_since)),
        incidents=tuple(queries.incidents(since, CORRUPTION_ACTIONS)),
        last_retention_run=queries.last_incident(RETENTION_RUN, all_databases=True),
        retention_due_by=retention_due_by(settings, now),
        drills_since=drills_since,
    )
