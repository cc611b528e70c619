"""Executing an approved provider restore (`provider_request.py` made the request).

safety dump (when the provider overwrites in place: the bot's own `pre-restore` backup,
the same step as an in-place restore of a backup) -> ask the provider to restore to the
point or snapshot, record its operation id -> follow the operation, its state in the
request message, until it succeeds, fails or outlasts `operation_timeout_minutes` ->
connect to the result and count every table's rows, compared with the newest verified
backup's manifest from before the point -> `restore.provider_succeeded` or
`restore.provider_failed`, with facts and no secrets (the result's name and host, never
its connection URL).

Rows written between that backup and the point legitimately differ, so a differing
count is reported, not a failure; a table of the manifest missing from the result (or
a result without tables) fails the verification.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from backupbot.clock import Clock
from backupbot.commands.interrupts import KillSwitches
from backupbot.commands.provider_window import check_window
from backupbot.commands.restore_model import (
    BOT_ACTOR,
    ProgressListener,
    RestoreProgress,
    record_incident,
)
from backupbot.commands.restore_outcome import RunState, compare_counts
from backupbot.errors import BackupbotError, ProviderError, VerificationFailed
from backupbot.settings import DatabaseSettings
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.pginspect import count_rows
from backupbot.storage.providers.contract import Into, ProviderAdapter, ProviderOperation
from backupbot.storage.providers.factory import adapter_for
from backupbot.storage.restores import FAILED, SUCCEEDED, RestoreRecord, RestoreRequests

log = logging.getLogger(__name__)

SafetyDump = Callable[[RestoreRecord, DatabaseSettings, RunState], None]


class ProviderTimeout(BackupbotError):
    code = "restore.provider_timeout"


class _Stopped(BackupbotError):
    code = "restore.interrupted"


class ProviderRunner:
    """Runs provider restores that `RestoreRunner` hands over (it owns the claim and
    the heartbeat)."""

    def __init__(
        self,
        *,
        restores: RestoreRequests,
        incidents: IncidentLog,
        clock: Clock,
        safety_dump: SafetyDump,
        interrupts: KillSwitches,
        adapters: Callable[[DatabaseSettings], ProviderAdapter | None] = adapter_for,
    ) -> None:
        self._restores = restores
        self._incidents = incidents
        self._clock = clock
        self._safety_dump = safety_dump
        self._interrupts = interrupts
        self._adapters = adapters

    def _record(self, action: str, outcome: str, record: RestoreRecord, **details: Any) -> None:
        record_incident(
            self._incidents,
            self._clock.now(),
            BOT_ACTOR,
            action,
            outcome,
            record.database,
            record,
            provider=record.provider,
            point_at=record.point_at.isoformat() if record.point_at else None,
            snapshot_id=record.snapshot_id,
            into=record.provider_into,
            **details,
        )

    def execute(
        self, record: RestoreRecord, db: DatabaseSettings, listener: ProgressListener
    ) -> RestoreRecord:
        """Never raises for expected failures: the record says succeeded or failed."""
        run = RunState(stage="provider")
        started = time.monotonic()
        self._record(
            "restore.provider_started",
            "ok",
            record,
            approved_by=record.decided_by,
            mode=record.mode,
            target=record.target_where,
        )
        stop = threading.Event()
        try:
            with self._interrupts.running(record.id, stop.set):
                return self._execute(record, db, run, started, listener, stop)
        except BaseException as exc:
            return self._failed(record, run, started, exc)

    def _stage(
        self,
        record: RestoreRecord,
        run: RunState,
        stage: str,
        listener: ProgressListener,
        detail: str | None = None,
        **values: Any,
    ) -> float:
        run.stage = stage
        self._restores.progress(
            record.id, stage, self._clock.now(), safety_backup_id=run.safety_backup_id, **values
        )
        try:
            listener(
                RestoreProgress(record.id, stage, dict(run.timings), run.safety_backup_id, detail)
            )
        except Exception:
            log.exception("restore progress listener failed; the restore goes on")
        return time.monotonic()

    def _execute(
        self,
        record: RestoreRecord,
        db: DatabaseSettings,
        run: RunState,
        started: float,
        listener: ProgressListener,
        stop: threading.Event,
    ) -> RestoreRecord:
        adapter = self._adapters(db)
        section = db.provider_section
        if adapter is None or section is None:
            raise ProviderError(
                f"{db.name} no longer has a provider section in the config; nothing was restored."
            )
        if record.point_at is not None and not record.snapshot_id:  # the window moved on
            window = adapter.recovery_window()
            now = self._clock.now()
            check_window(adapter.provider, db, window, record.point_at, now, "Since the request, ")
        provider: dict[str, Any] = record.preview.get("provider") or {}
        if provider.get("needs_safety_dump"):
            t = self._stage(record, run, "safety", listener)
            self._safety_dump(record, db, run)
            run.timings["safety"] = time.monotonic() - t
        t = self._stage(record, run, "provider", listener, "asking the provider")
        into: Into = "in_place" if record.provider_into == "in_place" else "new"
        operation = adapter.restore(
            to=None if record.snapshot_id else record.point_at,
            snapshot=record.snapshot_id,
            into=into,
            name=record.target_db if into == "new" else None,
        )
        run.touched = True
        deadline = time.monotonic() + section.operation_timeout_minutes * 60
        polling = (section.poll_seconds, deadline)
        operation = self._follow(record, run, adapter, operation, listener, stop, polling)
        run.timings["provider"] = time.monotonic() - t
        t = self._stage(record, run, "verify", listener)
        try:
            verified = self._verify(record, operation)
        finally:
            run.timings["verify"] = time.monotonic() - t
        return self._succeeded(record, run, started, operation, verified)

    def _follow(
        self,
        record: RestoreRecord,
        run: RunState,
        adapter: ProviderAdapter,
        operation: ProviderOperation,
        listener: ProgressListener,
        stop: threading.Event,
        polling: tuple[float, float],
    ) -> ProviderOperation:
        """Poll the operation every `polling[0]` seconds until it leaves `running` (or
        the monotonic deadline `polling[1]` passes); its state in the message."""
        poll_seconds, deadline = polling
        polls = 0
        while True:
            where = {"operation_id": operation.id[:400], "result_name": operation.result_name}
            where["result_host"] = operation.result_host
            if operation.state != "running":  # ids kept; the outcome shows the rest
                self._restores.progress(record.id, "provider", self._clock.now(), **where)
                if operation.state == "failed":
                    raise ProviderError(operation.detail or f"{adapter.provider} reports it failed")
                return operation
            state = "running" + (f": {operation.detail}" if operation.detail else "")
            self._stage(record, run, "provider", listener, f"{state} (check {polls})", **where)
            if time.monotonic() >= deadline:
                raise ProviderTimeout(
                    f"{adapter.provider}'s operation {operation.id} was still running after "
                    "operation_timeout_minutes; the bot stopped following it (the provider "
                    "goes on: check its dashboard)."
                )
            if stop.wait(poll_seconds):
                raise _Stopped(
                    "The bot was stopped while following the provider's operation "
                    f"{operation.id}; the provider goes on with it: check its dashboard."
                )
            polls += 1
            operation = adapter.operation_status(operation.id)

    def _verify(self, record: RestoreRecord, operation: ProviderOperation) -> dict[str, Any]:
        """Row counts of the result, against the manifest of the newest verified backup
        from before the point."""
        if not operation.connection_url:
            raise VerificationFailed(
                "The provider gave no way to connect to the result, so it was not verified."
            )
        try:
            with psycopg.connect(operation.connection_url, connect_timeout=30) as conn:
                actual = count_rows(conn)
        except psycopg.Error as exc:
            raise VerificationFailed(
                f"Could not connect to the result at {operation.result_host or '?'} to "
                f"verify it ({type(exc).__name__})."
            ) from None
        manifest: dict[str, Any] = record.preview.get("manifest") or {}
        expected: dict[str, int] = manifest.get("row_counts") or {}
        mismatches = compare_counts(expected, actual)
        missing = [m.table for m in mismatches if m.actual is None]
        facts: dict[str, Any] = {
            "tables": len(actual),
            "rows": sum(actual.values()),
            "compared_with": manifest.get("backup_id"),
            "compared_with_at": manifest.get("started_at"),
            "matching_tables": len(expected) - len(mismatches),
            "differing": [m.__dict__ for m in mismatches if m.actual is not None][:50],
            "missing_tables": missing[:50],
        }
        self._record(
            "restore.verified",
            "failed" if missing or not actual else "ok",
            record,
            **{k: v for k, v in facts.items() if k != "differing"},
            differing_tables=len(facts["differing"]),
        )
        if not actual:
            raise VerificationFailed("The restored database has no tables.")
        if missing:
            raise VerificationFailed(
                f"Verification failed: {len(missing)} table(s) of backup "
                f"{manifest.get('backup_id')} are missing from the result: "
                + ", ".join(missing[:5])
            )
        return facts

    def _succeeded(
        self,
        record: RestoreRecord,
        run: RunState,
        started: float,
        operation: ProviderOperation,
        verified: dict[str, Any],
    ) -> RestoreRecord:
        now = self._clock.now()
        result = {
            **verified,
            "timings": {k: round(v, 3) for k, v in run.timings.items()},
            "total_seconds": round(time.monotonic() - started, 3),
            "safety_backup_id": run.safety_backup_id,
            "operation_id": operation.id,
            "result_name": operation.result_name,
            "result_host": operation.result_host,
            "operation_detail": operation.detail,
            "target_state": "restored by the provider and verified",
        }
        with self._incidents.atomic():
            self._restores.finish(record.id, SUCCEEDED, now, result=result)
            self._record(
                "restore.provider_succeeded",
                "ok",
                record,
                operation_id=operation.id,
                result_name=operation.result_name,
                result_host=operation.result_host,
                seconds=result["total_seconds"],
                safety_backup_id=run.safety_backup_id,
                tables=verified["tables"],
                rows=verified["rows"],
                compared_with=verified["compared_with"],
            )
        return self._restores.get(record.id)

    def _failed(
        self, record: RestoreRecord, run: RunState, started: float, exc: BaseException
    ) -> RestoreRecord:
        message = (
            str(exc)
            if isinstance(exc, BackupbotError)
            else "An internal error stopped the provider restore; the bot's log has the details."
        )
        current = self._restores.get(record.id)
        state = _target_state(current, run)
        now = self._clock.now()
        result = {
            "timings": {k: round(v, 3) for k, v in run.timings.items()},
            "total_seconds": round(time.monotonic() - started, 3),
            "failed_stage": run.stage,
            "target_state": state,
            "safety_backup_id": run.safety_backup_id,
            "operation_id": current.operation_id,
            "result_name": current.result_name,
            "result_host": current.result_host,
        }
        with self._incidents.atomic():
            self._restores.finish(record.id, FAILED, now, result=result, error=message)
            self._record(
                "restore.provider_failed",
                "failed",
                record,
                error=message,
                stage=run.stage,
                target_state=state,
                operation_id=current.operation_id,
                safety_backup_id=run.safety_backup_id,
                error_type=type(exc).__name__,
            )
        if not isinstance(exc, Exception):
            raise exc
        return self._restores.get(record.id)


def _target_state(record: RestoreRecord, run: RunState) -> str:
    """What the failed provider restore left behind, in plain words."""
    if not run.touched:
        return f"nothing was restored; {record.database} was not touched"
    safety = (
        f"; its state before is in safety backup {run.safety_backup_id}"
        if run.safety_backup_id
        else ""
    )
    if record.provider_into == "in_place":
        return (
            f"the provider may have changed {record.database} in place{safety}; check its dashboard"
        )
    made = record.result_name or record.target_db
    return (
        f"{record.database} was not touched; the provider's new {made} may exist "
        "(check its dashboard and remove it when not needed)"
    )
