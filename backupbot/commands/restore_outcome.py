"""How a restore ends, recorded: its result against the RTO when it succeeded; when it
failed, why in plain words and the state it left the target in (rows that differ from the
manifest, a created target dropped again, the safety backup that holds what was there)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from backupbot.clock import Clock
from backupbot.commands.restore_model import BOT_ACTOR, record_incident
from backupbot.commands.schema_compare import (
    MAX_RECORDED,
    SchemaCheck,
    SchemaDifference,
    differences_phrase,
)
from backupbot.errors import BackupbotError
from backupbot.phrases import Phrase, join
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.pgadmin import drop_database
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.restores import FAILED, RestoreRecord, RestoreRequests
from backupbot.storage.restores import SUCCEEDED as RESTORE_SUCCEEDED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mismatch:
    table: str
    expected: int
    actual: int | None  # None: the table is missing from the target


def compare_counts(expected: dict[str, int], actual: dict[str, int]) -> list[Mismatch]:
    """Tables whose row count in the target differs from the backup's manifest."""
    return [
        Mismatch(table, rows, actual.get(table))
        for table, rows in sorted(expected.items())
        if actual.get(table) != rows
    ]


@dataclass
class RunState:
    """Book-keeping of one execution, for the result and the failure message."""

    timings: dict[str, float] = field(default_factory=dict)
    safety_backup_id: str | None = None
    created: bool = False
    touched: bool = False
    stage: str = "download"
    overlapped: list[str] = field(default_factory=list)  # timed stages run inside another


# The two failures below keep their leading underscore: incident records name the error
# type (`error_type`), and the checklist matches on "_VerificationMismatch".


class _VerificationMismatch(BackupbotError):
    code = "verification.mismatch"

    def __init__(
        self, mismatches: list[Mismatch], schema: tuple[SchemaDifference, ...] = ()
    ) -> None:
        self.mismatches = mismatches
        self.schema_differences = schema
        parts: list[Phrase | str] = []
        if mismatches:
            shown = "; ".join(
                f"{m.table}: {m.actual if m.actual is not None else 'missing'} rows, backup "
                f"has {m.expected}"
                for m in mismatches[:5]
            )
            more = f" (and {len(mismatches) - 5} more)" if len(mismatches) > 5 else ""
            parts.append(f"{len(mismatches)} table(s) differ from the backup: {shown}{more}")
        if schema:
            parts.append(differences_phrase(schema))
        super().__init__("Verification failed: " + join(parts, "; ") + ".")


class _SafetyBackupFailed(BackupbotError):
    code = "restore.safety_backup_failed"
    pass


class RestoreOutcomes:
    """Stores and records how each restore ended."""

    def __init__(self, *, restores: RestoreRequests, incidents: IncidentLog, clock: Clock) -> None:
        self._restores = restores
        self._incidents = incidents
        self._clock = clock

    def succeeded(
        self,
        record: RestoreRecord,
        run: RunState,
        started: float,
        expected: dict[str, int],
        actual: dict[str, int],
        *,
        rto: int,
        jobs: int,
        schema: SchemaCheck | None = None,
        prisma: dict[str, Any] | None = None,
    ) -> RestoreRecord:
        """The restore's result (timings against the RTO), stored and recorded; `prisma`:
        the Prisma head before and after and the migrations lost (`restore_facts`)."""
        now = self._clock.now()
        total = time.monotonic() - started
        result = {
            "timings": {k: round(v, 3) for k, v in run.timings.items()},
            "total_seconds": round(total, 3),
            "rto_minutes": rto,
            "within_rto": total <= rto * 60,
            "tables": len(expected),
            "rows": sum(expected.values()),
            "extra_tables": sorted(set(actual) - set(expected)),
            "safety_backup_id": run.safety_backup_id,
            "jobs": jobs,
            "target_state": "restored and verified",
        }
        if run.overlapped:  # their time is inside another stage's (not to be added up)
            result["overlapped"] = list(run.overlapped)
        if schema is not None:
            result["schema"] = schema.status
        if prisma is not None:
            result["prisma"] = prisma
        self._restores.finish(record.id, RESTORE_SUCCEEDED, now, result=result)
        record_incident(
            self._incidents,
            now,
            BOT_ACTOR,
            "restore.succeeded",
            "ok",
            record.database,
            record,
            recovery_seconds=result["total_seconds"],
            rto_minutes=rto,
            within_rto=result["within_rto"],
            timings=result["timings"],
            safety_backup_id=run.safety_backup_id,
            break_glass=record.break_glass,
            prisma=prisma,
        )
        return self._restores.get(record.id)

    def failed(
        self,
        record: RestoreRecord,
        run: RunState,
        started: float,
        exc: BaseException,
        target: ConnInfo,
        *,
        stopping: bool,
    ) -> RestoreRecord:
        """Store and record the failure `exc` (`stopping`: the bot is shutting down), after
        cleaning up the target where that is safe; re-raises an interruption."""
        message = _failure_message(record, run, exc, target, stopping=stopping)
        state = _target_state(record, run, target, exc)
        now = self._clock.now()
        result: dict[str, Any] = {
            "timings": {k: round(v, 3) for k, v in run.timings.items()},
            "total_seconds": round(time.monotonic() - started, 3),
            "failed_stage": run.stage,
            "target_state": state,
            "safety_backup_id": run.safety_backup_id,
        }
        if isinstance(exc, _VerificationMismatch):
            result["mismatches"] = [m.__dict__ for m in exc.mismatches[:50]]
            if exc.schema_differences:
                found = exc.schema_differences
                result["schema_differences"] = [d.record() for d in found[:MAX_RECORDED]]
                result["schema_differences_total"] = len(found)
        with self._incidents.atomic():
            self._restores.finish(record.id, FAILED, now, result=result, error=message)
            record_incident(
                self._incidents,
                now,
                BOT_ACTOR,
                "restore.failed",
                "failed",
                record.database,
                record,
                error=message,
                stage=run.stage,
                target_state=state,
                safety_backup_id=run.safety_backup_id,
                error_type=type(exc).__name__,
            )
        if not isinstance(exc, Exception):
            raise exc
        return self._restores.get(record.id)


def _failure_message(
    record: RestoreRecord, run: RunState, exc: BaseException, target: ConnInfo, *, stopping: bool
) -> str:
    """Why the restore failed, in plain words."""
    if stopping:
        return f"The restore was interrupted: the bot was stopped during the {run.stage} stage."
    if isinstance(exc, BackupbotError):
        return str(exc)
    if isinstance(exc, psycopg.OperationalError):
        return (
            f"The connection to {target.host}:{target.port} was lost during the {run.stage} stage."
        )
    if isinstance(exc, Exception):
        log.exception("restore %s crashed", record.id)
        return "An internal error stopped the restore; the bot's log has the details."
    return "The restore was interrupted (the bot or CLI was stopped)."


def _target_state(
    record: RestoreRecord, run: RunState, target: ConnInfo, exc: BaseException
) -> str:
    """The state the failed restore left the target in (a target it created is dropped)."""
    if not run.touched and not run.created:
        return f"{record.target_db} was not touched"
    if run.created and not isinstance(exc, _VerificationMismatch):
        return _drop_created(record, run, target)
    safety = (
        f"; its previous state is in safety backup {run.safety_backup_id}"
        if run.safety_backup_id
        else ""
    )
    if isinstance(exc, _VerificationMismatch):
        return f"{record.target_db} is restored but does not match the backup{safety}"
    return f"{record.target_db} is partially restored{safety}"


def _drop_created(record: RestoreRecord, run: RunState, target: ConnInfo) -> str:
    """Drop the target this restore created (empty while the download ran, or partly
    restored); the state that leaves."""
    name = record.target_db
    try:
        drop_database(target)
    except (BackupbotError, psycopg.Error):
        log.exception("could not drop %s after a failed restore", name)
        if not run.touched:
            return f"{name} was created, empty, for this restore; drop it by hand"
        return f"{name} is partially restored; drop it by hand"
    if not run.touched:
        return f"{name} was created, empty, for this restore and has been removed"
    return f"{name} was created for this restore and has been removed"
