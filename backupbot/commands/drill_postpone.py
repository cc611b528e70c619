"""Postponing a scheduled restore drill: `/backup drill postpone app 3d` moves the next
scheduled drill of one database by 1 to 14 days. The scheduled run skips it, housekeeping
starts it at the new time, and both the postponement and the skipped firing are
recorded."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from backupbot.clock import Clock
from backupbot.commands import humanize
from backupbot.commands.schedule import ScheduledJob
from backupbot.errors import UsageError
from backupbot.phrases import Actor, Name, say
from backupbot.storage.drill_postponements import DrillPostponements, Postponement
from backupbot.storage.incidents import IncidentLog

MAX_DAYS = 14
_DAYS = re.compile(r"^(\d{1,2})d?$")


def parse_days(text: str) -> int:
    """`3d` or `3` as days, 1 to MAX_DAYS; else a `UsageError`."""
    m = _DAYS.match(text.strip().lower())
    days = int(m.group(1)) if m else 0
    if not 1 <= days <= MAX_DAYS:
        raise UsageError(
            say("Postpone by 1d to {most}d, e.g. {example}.", most=MAX_DAYS, example=Name("3d")),
            "postpone",
        )
    return days


class DrillPostponer:
    def __init__(
        self,
        postponements: DrillPostponements,
        incidents: IncidentLog,
        clock: Clock,
        job: ScheduledJob,
    ) -> None:
        self._postponements = postponements
        self._incidents = incidents
        self._clock = clock
        self._job = job

    def postpone(self, database: str, days: str, actor: str) -> Postponement:
        """Move the next scheduled drill of `database` by `days`; raises `UsageError`."""
        now = self._clock.now()
        firing = self._job.next_fire(now)
        if firing is None:
            raise UsageError("schedules.drill never fires, so there is no drill to postpone.")
        wanted = Postponement(
            database, firing, firing + timedelta(days=parse_days(days)), actor, now
        )
        with self._incidents.atomic():
            if not self._postponements.add(wanted):
                found = self._postponements.get(database, firing)
                raise UsageError(
                    say(
                        "The drill of {db} at {at} is postponed already, to {to} by {who}.",
                        db=Name(database),
                        at=humanize.utc(firing),
                        to=humanize.utc(found.run_at if found else None),
                        who=Actor(found.requested_by if found else "?"),
                    )
                )
            self._incidents.record(
                at=now,
                actor=actor,
                action="drill.postponed",
                outcome="ok",
                database=database,
                details={"firing": firing.isoformat(), "run_at": wanted.run_at.isoformat()},
            )
        return wanted

    def skipped_now(self, now: datetime) -> set[str]:
        """Databases whose scheduled drill at this firing is postponed."""
        return {p.database for p in self._postponements.active(now)}

    def claim_due(self, now: datetime) -> list[Postponement]:
        """Postponed drills to start now, each claimed once."""
        return [p for p in self._postponements.due(now) if self._postponements.start(p, now)]
