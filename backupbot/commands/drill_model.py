"""The restore drill's vocabulary: its stages and what it reports, its scratch
database's name, the pass/fail rule, failures in words, and its incident records."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from backupbot.commands import humanize
from backupbot.commands.restore_targets import Targets
from backupbot.errors import BackupbotError
from backupbot.phrases import Command, Name, Phrase, say
from backupbot.settings import DatabaseSettings
from backupbot.storage.catalog import BackupRecord
from backupbot.storage.drills import FAILED, PASSED, DrillRecord
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.pgadmin import database_exists
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.restores import SUCCEEDED as RESTORE_SUCCEEDED
from backupbot.storage.restores import RestoreRecord

DRILL_USAGE = "drill"  # the registry command whose usage a refusal shows
SCRATCH_PREFIX = "backupbot_drill_"
STAGES = ("download", "create", "restore", "verify")
STOPPED = "The bot stopped during the drill, so it did not finish. Run the drill again."


class DrillAlreadyRunning(BackupbotError):
    """A drill of this database is running; a second one is refused, not queued."""

    code = "drill.already_running"

    def __init__(self, record: DrillRecord) -> None:
        self.drill_id = record.id
        super().__init__(
            f"A restore drill of {record.database} is already running (drill {record.id}, "
            f"started by {record.actor} at {humanize.utc(record.started_at)}). Its result "
            "will appear in the channel."
        )


@dataclass(frozen=True)
class DrillStage:
    """A drill stage starting; `timings` holds the seconds each finished stage took."""

    drill_id: str
    stage: str
    timings: dict[str, float]


StageListener = Callable[[DrillStage], None]


def scratch_name(database: str, drill_id: str) -> str:
    """`backupbot_drill_<db>_<drill id>`: lowercase, at most 63 bytes, and never the name
    of a configured database (the prefix and the random id see to that)."""
    base = re.sub(r"[^a-z0-9_]", "_", database.lower())
    suffix = f"_{drill_id.lower()}"
    return SCRATCH_PREFIX + base[: 63 - len(SCRATCH_PREFIX) - len(suffix)] + suffix


def judge(
    restored: bool, total_seconds: float | None, rto_minutes: int, error: str | None
) -> tuple[str, str | None]:
    """(passed|failed, why it failed). A verified restore over the RTO fails."""
    if not restored:
        return FAILED, error or "The restore failed."
    if total_seconds is None or total_seconds > rto_minutes * 60:
        took = humanize.duration(timedelta(seconds=total_seconds or 0))
        return FAILED, (
            f"Restored and verified correctly, but it took {took}, over the RTO of "
            f"{rto_minutes} min. Speed up the restore (pg_restore jobs, a closer store) or "
            "agree a realistic RTO."
        )
    return PASSED, None


def scratch_target(
    db: DatabaseSettings, scratch: str, targets: Targets, target_name: str | None
) -> ConnInfo:
    """The connection to scratch database `scratch` on the drill target's server (a
    `targets:` entry), or on `db`'s own server when it has none."""
    return targets.conn(db, target_name, scratch)


def backup_json(backup: BackupRecord) -> dict[str, Any]:
    """The backup a drill restores, as its records show it."""
    return {
        "id": backup.id,
        "started_at": backup.started_at.isoformat(),
        "stored_size": backup.stored_size,
        "label": backup.label,
    }


def failure_text(exc: BaseException) -> str:
    """Why a drill step failed, in words for the drill's record."""
    if isinstance(exc, BackupbotError):
        return str(exc)
    if isinstance(exc, psycopg.Error):
        return "the database server reported an error; the bot's log has the details."
    if isinstance(exc, Exception):
        return "An internal error stopped the drill; the bot's log has the details."
    return "The drill was interrupted (the bot or CLI was stopped)."


def record_drill_incident(
    incidents: IncidentLog,
    at: datetime,
    actor: str,
    action: str,
    outcome: str,
    r: DrillRecord,
    **details: Any,
) -> None:
    """One incident record about drill `r`; empty details are left out."""
    incidents.record(
        at=at,
        actor=actor,
        action=action,
        outcome=outcome,
        database=r.database,
        backup_id=r.backup_id,
        details={
            "drill_id": r.id,
            **{k: v for k, v in {"target_name": r.target_name, **details}.items() if v is not None},
        },
    )


def start_problem(
    database: str, backup: BackupRecord | None, scratch: str, target: ConnInfo
) -> Phrase | None:
    """Why a drill cannot start (no verified backup, its scratch name taken, the server
    unreachable), or None when it can."""
    if backup is None:
        return say(
            "{db} has no verified backup, so there was nothing to restore. Take one with "
            "{cmd} and check that its schedule runs.",
            db=Name(database),
            cmd=Command("now", database),
        )
    try:
        if database_exists(target):
            return say(
                "A database named {scratch} already exists on {where}; the drill never "
                "touches a database it did not create. Drop or rename it, then run the "
                "drill again.",
                scratch=Name(scratch),
                where=Name(f"{target.host}:{target.port}"),
            )
    except (BackupbotError, psycopg.Error) as exc:
        return say(
            "The drill could not reach the server of {db}: {why}",
            db=Name(database),
            why=failure_text(exc),
        )
    return None


def drill_result(record: DrillRecord, restore: RestoreRecord | None) -> dict[str, Any]:
    """The drill's result: what it started with, plus what its restore measured."""
    result = dict(record.result)
    if restore is None:
        return result
    res = restore.result
    result.update(
        restore_id=restore.id,
        timings=dict(res.get("timings") or {}),
        total_seconds=res.get("total_seconds"),
    )
    if restore.status == RESTORE_SUCCEEDED:
        result.update(tables=res.get("tables", 0), rows=res.get("rows", 0))
        keys: tuple[str, ...] = ("schema",)
    else:
        result["failed_stage"] = res.get("failed_stage")
        keys = ("mismatches", "schema_differences", "schema_differences_total")
    result.update({key: res[key] for key in keys if res.get(key)})
    return result
