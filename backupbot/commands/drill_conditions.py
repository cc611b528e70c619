"""`DrillConditions`: the alert conditions of restore drills: the latest drill of a
database failed, or no drill of it has passed for `drill.max_age_days`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from backupbot.commands import humanize
from backupbot.commands.conditions import DRILL_FAILED, DRILL_MISSING, Finding
from backupbot.phrases import Command, Name, Phrase, say
from backupbot.storage.drills import FAILED

if TYPE_CHECKING:  # drill.py imports this module
    from backupbot.commands.drill import DrillService


class DrillConditions:
    """`DRILL_FAILED`: the latest finished drill of a configured database failed.
    `DRILL_MISSING`: no drill of it passed within `max_age` (the runbook's monthly
    restore test did not happen). Each clears as soon as a drill of that database passes."""

    conditions: tuple[str, ...] = (DRILL_FAILED, DRILL_MISSING)

    def __init__(self, drills: DrillService, max_age: timedelta = timedelta(days=35)) -> None:
        self._drills = drills
        self._max_age = max_age

    def check(self, now: datetime) -> list[Finding]:
        return self._failed() + self._missing(now)

    def _missing(self, now: datetime) -> list[Finding]:
        findings = []
        for name in self._drills.database_names:
            passed = self._drills.latest_passed(name)
            since = passed.finished_at if passed is not None else self._drills.watched_since(name)
            if since is None or now - since <= self._max_age:
                continue  # never backed up (the backup alerts say so), or drilled in time
            days = self._max_age.days
            last = (
                say("the last passed drill was {at}", at=humanize.utc(since))
                if passed is not None
                else say(
                    "it was never drilled since its first backup ({at})", at=humanize.utc(since)
                )
            )
            findings.append(
                Finding(
                    condition=DRILL_MISSING,
                    database=name,
                    summary=say(
                        "No restore drill of {db} has passed in {days} days: {last}. The "
                        "runbook asks for a tested restore every month: run {cmd} (and check "
                        "that schedules.drill fires); this clears when a drill passes.",
                        db=Name(name),
                        days=days,
                        last=last,
                        cmd=Command("drill", name),
                    ),
                    details={
                        "last_passed_drill_id": passed.id if passed else None,
                        "since": since.isoformat(),
                        "max_age_days": days,
                    },
                )
            )
        return findings

    def _failed(self) -> list[Finding]:
        findings = []
        for name in self._drills.database_names:
            drill = self._drills.latest_finished(name)
            if drill is None or drill.status != FAILED:
                continue
            error: Phrase | str = drill.error_phrase or "see its message in the channel"
            if len(str(error)) > 400:  # a long server message: its plain text, cut
                error = str(error)[:399] + "…"
            findings.append(
                Finding(
                    condition=DRILL_FAILED,
                    database=name,
                    summary=say(
                        "The restore drill of {db} ({at}) failed: {error} Fix the cause and "
                        "run {cmd}; this clears when a drill passes.",
                        db=Name(name),
                        at=humanize.utc(drill.finished_at),
                        error=error,
                        cmd=Command("drill", name),
                    ),
                    details={
                        "drill_id": drill.id,
                        "finished_at": drill.finished_at.isoformat() if drill.finished_at else None,
                        "backup_id": drill.backup_id,
                        "channel": drill.channel,
                        "message_ts": drill.message_ts,
                    },
                )
            )
        return findings
