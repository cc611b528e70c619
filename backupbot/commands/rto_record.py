"""The runbook's RTO record, per database: "Target: 30 minutes · Tested: [date] · Result:
[Pass/Fail]", plus the duration, who reviewed the drill and the trend of the last six.

`RtoLine` is a pure fact built from the drills `/backup status` and the checklist already
read (anything with a drill's status, start, duration, target and reviewer); `rto_phrase`
and `trend_text` are its words, the same in Slack, the terminal and the checklist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from backupbot.commands import humanize
from backupbot.phrases import Actor, Phrase, say

TREND_DRILLS = 6
PASS, FAIL, NEVER = "Pass", "Fail", "never"


class DrillOutcome(Protocol):
    """What the RTO record reads of a drill (a status summary, a checklist fact, a record)."""

    @property
    def status(self) -> str: ...  # running | passed | failed
    @property
    def started_at(self) -> datetime: ...
    @property
    def total_seconds(self) -> float | None: ...
    @property
    def rto_minutes(self) -> int | None: ...  # the target it was judged against
    @property
    def reviewed_by(self) -> str | None: ...


def within_target(d: DrillOutcome) -> bool:
    """Restored within the target it was judged against."""
    seconds, minutes = d.total_seconds, d.rto_minutes
    return seconds is not None and minutes is not None and seconds <= minutes * 60


def result_of(d: DrillOutcome) -> str:
    """Pass for a drill that passed within its target, else Fail (the runbook's words)."""
    return PASS if d.status == "passed" and (d.rto_minutes is None or within_target(d)) else FAIL


def took(seconds: float | None) -> str:
    return humanize.duration(timedelta(seconds=seconds)) if seconds is not None else "?"


@dataclass(frozen=True)
class TrendPoint:
    started_at: datetime
    result: str  # Pass | Fail
    seconds: float | None  # None: it did not restore, so there is no recovery time
    target_minutes: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat(),
            "result": self.result,
            "duration_seconds": self.seconds,
            "target_minutes": self.target_minutes,
        }


@dataclass(frozen=True)
class RtoLine:
    """One database's RTO record: its target now, and its latest finished drill."""

    database: str
    target_minutes: int | None
    tested_at: datetime | None  # None: never drilled
    result: str  # Pass | Fail | never
    seconds: float | None
    reviewed_by: str | None
    tested_against: int | None  # the target the latest drill was judged against
    trend: tuple[TrendPoint, ...] = ()  # the last finished drills, oldest first

    @property
    def tested(self) -> bool:
        return self.tested_at is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "target_minutes": self.target_minutes,
            "tested_at": self.tested_at.isoformat() if self.tested_at else None,
            "result": self.result,
            "duration_seconds": self.seconds,
            "tested_against_minutes": self.tested_against,
            "reviewed_by": self.reviewed_by,
            "trend": [p.as_json() for p in self.trend],
        }


def rto_line(database: str, target_minutes: int | None, drills: Iterable[DrillOutcome]) -> RtoLine:
    """The line from `database`'s drills (any order; running ones are left out). Without
    a target, the latest drill's own is taken."""
    finished = sorted(
        (d for d in drills if d.status != "running"), key=lambda d: d.started_at, reverse=True
    )[:TREND_DRILLS]
    trend = tuple(
        TrendPoint(d.started_at, result_of(d), d.total_seconds, d.rto_minutes)
        for d in reversed(finished)
    )
    if not finished:
        return RtoLine(database, target_minutes, None, NEVER, None, None, None, trend)
    last = finished[0]
    return RtoLine(
        database=database,
        target_minutes=target_minutes if target_minutes is not None else last.rto_minutes,
        tested_at=last.started_at,
        result=result_of(last),
        seconds=last.total_seconds,
        reviewed_by=last.reviewed_by,
        tested_against=last.rto_minutes,
        trend=trend,
    )


def rto_phrase(line: RtoLine) -> Phrase:
    """ "RTO: target 30 min · tested 2026-11-02 · Pass · 4 min 10 s · reviewed by @X"."""
    target = "?" if line.target_minutes is None else f"{line.target_minutes} min"
    if line.tested_at is None:
        return say("RTO: target {target} · never tested", target=target)
    against = ""
    if line.tested_against is not None and line.tested_against != line.target_minutes:
        against = f" (against {line.tested_against} min then)"
    duration = "" if line.seconds is None else f" · {took(line.seconds)}"
    who = (
        say("reviewed by {who}", who=Actor(line.reviewed_by))
        if line.reviewed_by
        else say("not reviewed")
    )
    return say(
        "RTO: target {target} · tested {date} · {result}{duration}{against} · {who}",
        target=target,
        date=f"{line.tested_at.astimezone(UTC):%Y-%m-%d}",
        result=line.result,
        duration=duration,
        against=against,
        who=who,
    )


def trend_text(line: RtoLine) -> str:
    """Recovery times of the last drills, oldest to newest, ✓ Pass / ✗ Fail:
    "2 min 5 s ✓ → 2 min 40 s ✓ → ✗"; "" when never drilled."""
    parts = []
    for p in line.trend:
        mark = "✓" if p.result == PASS else "✗"
        parts.append(mark if p.seconds is None else f"{took(p.seconds)} {mark}")
    return " → ".join(parts)
