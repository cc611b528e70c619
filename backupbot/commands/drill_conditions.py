"""`DrillConditions`: the alert condition that the latest drill of a database failed."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from backupbot.commands import humanize
from backupbot.commands.conditions import DRILL_FAILED, Finding
from backupbot.phrases import Command, Name, Phrase, say
from backupbot.storage.drills import FAILED

if TYPE_CHECKING:  # drill.py imports this module
    from backupbot.commands.drill import DrillService


class DrillConditions:
    """`DRILL_FAILED`: the latest finished drill of a configured database failed. The
    finding clears as soon as a later drill of that database passes."""

    conditions: tuple[str, ...] = (DRILL_FAILED,)

    def __init__(self, drills: DrillService) -> None:
        self._drills = drills

    def check(self, now: datetime) -> list[Finding]:
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
