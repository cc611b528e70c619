"""Restore drills: prove, on a schedule, that the latest verified backup restores in time.

A drill restores a database's latest verified backup into a scratch database on the same
server (`backupbot_drill_<db>_<drill id>`, checked to be free first), through the restore
engine (`RestoreRunner.execute` on a `drill`-mode restore row, so the stages and checks
are the restore's own: SHA-256, create, pg_restore, row counts against the manifest),
then drops the scratch database whatever happened. It passes when the backup restored,
every table matched, and the restore took no longer than the database's RTO; a correct
restore that took too long is a failure, because the RTO is the promise being tested.

A started drill waits (stage `queued`) until the process that executes it claims it:
a queue worker (`/backup drill`, the schedule) or the CLI itself. Drills that a stopped
bot left behind are failed and their scratch databases dropped by `fail_abandoned(now)`
and `cleanup_leftovers(now)`, which only ever drop databases named in the drills table.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from backupbot.clock import Clock
from backupbot.commands import humanize
from backupbot.commands.conditions import DRILL_FAILED, Finding
from backupbot.commands.restore_run import (
    BOT_ACTOR,
    RestoreProgress,
    RestoreRunner,
    record_incident,
    rto_minutes,
)
from backupbot.commands.status import DrillSummary
from backupbot.errors import BackupbotError, UsageError
from backupbot.settings import DatabaseSettings, RestoreSettings
from backupbot.storage.catalog import SUCCEEDED, BackupCatalog, BackupRecord
from backupbot.storage.drills import FAILED, PASSED, DrillLog, DrillRecord, new_drill_id
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.liveness import owner_is_dead, process_identity
from backupbot.storage.pgadmin import database_exists, drop_database
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.restores import DRILL, NewRestore, RestoreRecord, RestoreRequests
from backupbot.storage.restores import FAILED as RESTORE_FAILED
from backupbot.storage.restores import SUCCEEDED as RESTORE_SUCCEEDED

log = logging.getLogger(__name__)

DRILL_USAGE = "/backup drill [db]"
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


def _backup_json(backup: BackupRecord) -> dict[str, Any]:
    return {
        "id": backup.id,
        "started_at": backup.started_at.isoformat(),
        "stored_size": backup.stored_size,
        "label": backup.label,
    }


class DrillService:
    """Runs restore drills and cleans up after them."""

    def __init__(
        self,
        *,
        databases: Sequence[DatabaseSettings],
        drills: DrillLog,
        catalog: BackupCatalog,
        restores: RestoreRequests,
        runner: RestoreRunner,
        incidents: IncidentLog,
        clock: Clock,
        settings: RestoreSettings,
        heartbeat_seconds: float = 30.0,
    ) -> None:
        self._databases = {d.name: d for d in databases}
        self._drills = drills
        self._catalog = catalog
        self._restores = restores
        self._runner = runner
        self._incidents = incidents
        self._clock = clock
        self._settings = settings
        self._heartbeat_seconds = heartbeat_seconds

    @property
    def database_names(self) -> list[str]:
        return list(self._databases)

    def rto_minutes(self, database: str) -> int:
        return rto_minutes(self._databases, self._settings, database)

    # -- running a drill ----------------------------------------------------------------

    def run(
        self, database: str, actor: str, on_stage: StageListener = lambda _s: None
    ) -> DrillRecord:
        """Start and execute a drill of `database`; the finished record says passed or
        failed. Raises only `UsageError` (unknown database) and `DrillAlreadyRunning`."""
        return self.execute(self.start(database, actor).id, on_stage)

    def start(self, database: str, actor: str) -> DrillRecord:
        """Record a running drill of `database` (resolving the backup and claiming a free
        scratch name). A drill that cannot run (no verified backup, server unreachable)
        is recorded and returned already failed: that is a finding, not a usage error."""
        db = self._db(database)
        now = self._clock.now()
        if (current := self._drills.running(database, now, owner_is_dead)) is not None:
            raise DrillAlreadyRunning(current)
        drill_id = new_drill_id()
        scratch = scratch_name(database, drill_id)
        target = self._scratch_target(db, scratch)
        backup = self._latest_verified(database)
        problem = None
        if backup is None:
            problem = (
                f"{database} has no verified backup, so there was nothing to restore. Take one "
                f"with /backup now {database} and check that its schedule runs."
            )
        else:
            try:
                if database_exists(target):
                    problem = (
                        f"A database named {scratch} already exists on {target.host}:"
                        f"{target.port}; the drill never touches a database it did not create. "
                        "Drop or rename it, then run the drill again."
                    )
            except (BackupbotError, psycopg.Error) as exc:
                problem = f"The drill could not reach the server of {database}: {_message(exc)}"
        result: dict[str, Any] = {"scratch": target.where}
        if backup is not None:
            result["backup"] = _backup_json(backup)
            result["backup_age_seconds"] = round((now - backup.started_at).total_seconds())
        record = self._drills.create(
            drill_id,
            database=database,
            scratch_db=scratch,
            actor=actor,
            rto_minutes=self.rto_minutes(database),
            backup_id=backup.id if backup else None,
            now=now,
            result=result,
            scratch_dropped=problem is not None,  # nothing will be created: nothing to drop
        )
        self._record(
            now,
            actor,
            "drill.started",
            "ok",
            record,
            scratch=target.where,
            rto_minutes=record.rto_minutes,
        )
        if problem is not None:
            self._finish(record, FAILED, {**result, "failed_stage": "start"}, problem, None)
            return self._drills.get(record.id)
        return record

    def hold(self, record: DrillRecord, holder: str) -> bool:
        """A queue takes the waiting drill (`DrillLog.hold`)."""
        return self._drills.hold(record, holder)

    def waiting(self) -> list[DrillRecord]:
        """Drills no process has claimed yet."""
        return self._drills.waiting()

    def fail_unqueued(self, record: DrillRecord) -> DrillRecord:
        """The queue refused a started drill: fail it, so it does not look running."""
        message = "The drill could not be queued for a worker; nothing was started."
        result = {**record.result, "failed_stage": "start", "cleanup": "nothing to drop"}
        self._drills.mark_dropped(record.id)  # nothing was created
        self._finish(record, FAILED, result, message, None)
        return self._drills.get(record.id)

    def claim(self, drill_id: str) -> bool:
        """Take a waiting drill for this process (see `DrillLog.claim`); False if another
        process has it or it is no longer waiting."""
        return self._drills.claim(drill_id, process_identity(), self._clock.now())

    def execute(
        self,
        drill_id: str,
        on_stage: StageListener = lambda _s: None,
        *,
        claimed: bool = False,
    ) -> DrillRecord:
        """Restore, verify, time and clean up a started drill, claiming it first unless
        the caller has (`claimed`). Never raises for expected failures; the scratch
        database is dropped whatever happened. A drill another process has is left alone
        and returned as it stands."""
        record = self._drills.get(drill_id)
        if record.finished:
            return record
        if not claimed and not self.claim(drill_id):
            log.warning("drill %s is not waiting any more; not running it", drill_id)
            return self._drills.get(drill_id)
        stop = threading.Event()
        threading.Thread(
            target=self._beat, args=(record.id, stop), name=f"heartbeat-{record.id}", daemon=True
        ).start()
        restore: RestoreRecord | None = None
        interrupted: BaseException | None = None
        error: str | None = None
        try:
            restore = self._restore(record, on_stage)
        except BaseException as exc:  # the scratch database must go whatever happened
            if not isinstance(exc, Exception):
                interrupted = exc
            error = _message(exc)
            if isinstance(exc, Exception) and not isinstance(exc, BackupbotError):
                log.exception("restore drill %s crashed", record.id)
        finally:
            stop.set()
        result = self._result(record, restore)
        result["cleanup"] = self._drop_scratch(self._drills.get(record.id))
        restored = restore is not None and restore.status == RESTORE_SUCCEEDED
        if restore is not None and not restored:
            error = restore.error
        total = result.get("total_seconds") if restored else None
        status, why = judge(restored, total, record.rto_minutes, error)
        result["within_rto"] = restored and status == PASSED
        self._finish(record, status, result, why, total)
        if interrupted is not None:
            raise interrupted
        return self._drills.get(record.id)

    def _restore(self, record: DrillRecord, on_stage: StageListener) -> RestoreRecord:
        db = self._db(record.database)
        assert record.backup_id is not None
        backup = self._catalog.get(record.backup_id)
        target = self._scratch_target(db, record.scratch_db)
        now = self._clock.now()
        restore = self._restores.create(
            NewRestore(
                database=record.database,
                backup_id=backup.id,
                mode=DRILL,
                target_db=record.scratch_db,
                target_where=target.where,
                requester=record.actor,
                reason=f"restore drill {record.id}",
                required_approvals=0,
                expires_at=now,
                preview={
                    "backup": _backup_json(backup),
                    "target": {"where": target.where, "exists": False},
                    "drill_id": record.id,
                    "rto_minutes": record.rto_minutes,
                },
            ),
            now,
        )
        self._drills.set_restore(record.id, restore.id, now)

        def on_progress(progress: RestoreProgress) -> None:
            self._drills.heartbeat(record.id, self._clock.now(), progress.stage)
            try:
                on_stage(DrillStage(record.id, progress.stage, dict(progress.timings)))
            except Exception:
                log.exception("drill stage listener failed; the drill goes on")

        return self._runner.execute(restore.id, on_progress)

    def _result(self, record: DrillRecord, restore: RestoreRecord | None) -> dict[str, Any]:
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
        else:
            result["failed_stage"] = res.get("failed_stage")
            if res.get("mismatches"):
                result["mismatches"] = res["mismatches"]
        return result

    def _drop_scratch(self, record: DrillRecord) -> str:
        """Drop the scratch database (if it exists); what happened, in words."""
        if record.scratch_dropped:
            return "nothing to drop"
        db = self._databases.get(record.database)
        if db is None or not record.scratch_db.startswith(SCRATCH_PREFIX):
            log.warning("not dropping %s: not a drill scratch database it can reach", record.id)
            return f"{record.scratch_db} was left: {record.database} is no longer configured"
        target = self._scratch_target(db, record.scratch_db)
        now = self._clock.now()
        try:
            drop_database(target)
        except (BackupbotError, psycopg.Error) as exc:
            log.warning("could not drop scratch database %s: %s", target.where, exc)
            self._record(
                now,
                BOT_ACTOR,
                "drill.cleanup",
                "failed",
                record,
                scratch=target.where,
                error=_message(exc),
            )
            return f"{record.scratch_db} could not be dropped yet; the bot retries at start-up"
        self._drills.mark_dropped(record.id)
        self._record(now, BOT_ACTOR, "drill.cleanup", "ok", record, scratch=target.where)
        return "dropped"

    def _finish(
        self,
        record: DrillRecord,
        status: str,
        result: dict[str, Any],
        error: str | None,
        total: float | None,
    ) -> None:
        now = self._clock.now()
        if not self._drills.finish(
            record.id, status, now, result=result, error=error, total_seconds=total
        ):
            return  # already finished (clean-up of another process declared it stopped)
        self._record(
            now,
            BOT_ACTOR,
            f"drill.{status}",
            "ok" if status == PASSED else "failed",
            record,
            error=error,
            total_seconds=total,
            rto_minutes=record.rto_minutes,
            within_rto=result.get("within_rto"),
            timings=result.get("timings"),
            tables=result.get("tables"),
            rows=result.get("rows"),
            failed_stage=result.get("failed_stage"),
            cleanup=result.get("cleanup"),
        )

    def _beat(self, drill_id: str, stop: threading.Event) -> None:
        """Keep the drill's heartbeat fresh through a long restore, so clean-up in another
        process never mistakes it for a drill whose bot stopped."""
        while not stop.wait(self._heartbeat_seconds):
            try:
                self._drills.heartbeat(drill_id, self._clock.now())
            except Exception:
                log.exception("could not record the heartbeat of drill %s", drill_id)

    # -- clean-up -----------------------------------------------------------------------

    def cleanup_leftovers(self, now: datetime) -> list[DrillRecord]:
        """Fail drills whose bot stopped (stale heartbeat) and drop the scratch databases
        of finished drills not yet confirmed gone (at start-up: a drop that fails is
        recorded each time). Returns the drills it changed."""
        changed = {r.id: r for r in self.fail_abandoned(now)}
        for r in self._drills.undropped():
            if self._drop_scratch(r) == "dropped":
                changed[r.id] = self._drills.get(r.id)
        return list(changed.values())

    def fail_abandoned(self, now: datetime) -> list[DrillRecord]:
        """Fail drills whose process stopped (a stale heartbeat, or an owner on this host
        that is gone; `storage/liveness.py`) and drop their scratch databases; cheap
        enough to run every few seconds. Returns the drills failed."""
        changed: dict[str, DrillRecord] = {}
        for r in self._drills.abandoned(now, owner_is_dead):
            result = {**r.result, "failed_stage": "interrupted"}
            if self._drills.finish(
                r.id, FAILED, now, result=result, error=STOPPED, total_seconds=None, seen=r
            ):
                self._record(
                    now,
                    BOT_ACTOR,
                    "drill.failed",
                    "failed",
                    r,
                    error=STOPPED,
                    stage=r.stage,
                    owner=r.owner,
                )
                self._fail_restore(r, now)
                self._drop_scratch(self._drills.get(r.id))
                changed[r.id] = self._drills.get(r.id)
        return list(changed.values())

    def _fail_restore(self, drill: DrillRecord, now: datetime) -> None:
        """Close the drill's restore row, which the stopped process left running."""
        if drill.restore_id is None:
            return
        message = "The bot stopped during the restore drill."
        result = {"target_state": "scratch database dropped by the drill clean-up"}
        if self._restores.finish(
            drill.restore_id, RESTORE_FAILED, now, result=result, error=message
        ):
            restore = self._restores.get(drill.restore_id)
            record_incident(
                self._incidents,
                now,
                BOT_ACTOR,
                "restore.failed",
                "failed",
                drill.database,
                restore,
                error=message,
                drill_id=drill.id,
            )

    # -- queries ------------------------------------------------------------------------

    def get(self, drill_id: str) -> DrillRecord:
        return self._drills.get(drill_id)

    def set_message(self, drill_id: str, channel: str, ts: str) -> None:
        self._drills.set_message(drill_id, channel, ts)

    def recent(self, database: str, limit: int = 6) -> list[DrillRecord]:
        """The newest `limit` drills of `database`, newest first."""
        return self._drills.recent(database, limit)

    def latest(self, database: str) -> DrillRecord | None:
        """The newest drill of `database`, running or finished."""
        return self._drills.latest(database)

    def latest_finished(self, database: str) -> DrillRecord | None:
        return self._drills.latest(database, finished=True)

    def summaries(self, database: str, limit: int = 6) -> list[DrillSummary]:
        """What `/backup status` shows: the last drills and the RTO trend, newest first."""
        return [
            DrillSummary(
                status=r.status,
                started_at=r.started_at,
                total_seconds=r.total_seconds,
                rto_minutes=r.rto_minutes,
                error=r.error,
            )
            for r in self.recent(database, limit)
        ]

    # -- helpers ------------------------------------------------------------------------

    def _db(self, name: str) -> DatabaseSettings:
        db = self._databases.get(name)
        if db is None:
            names = ", ".join(self._databases)
            raise UsageError(
                f"There is no configured database named {name!r}. Configured: {names}.",
                DRILL_USAGE,
            )
        return db

    @staticmethod
    def _scratch_target(db: DatabaseSettings, scratch: str) -> ConnInfo:
        return ConnInfo.from_url(db.url.get_secret_value()).with_dbname(scratch)

    def _latest_verified(self, database: str) -> BackupRecord | None:
        """The newest verified backup whose artifact retention has not deleted."""
        for backup in self._catalog.recent(database, 200):
            if backup.status == SUCCEEDED and backup.deleted_at is None:
                return backup
        return None

    def _record(
        self, at: datetime, actor: str, action: str, outcome: str, r: DrillRecord, **details: Any
    ) -> None:
        self._incidents.record(
            at=at,
            actor=actor,
            action=action,
            outcome=outcome,
            database=r.database,
            backup_id=r.backup_id,
            details={"drill_id": r.id, **{k: v for k, v in details.items() if v is not None}},
        )


def _message(exc: BaseException) -> str:
    if isinstance(exc, BackupbotError):
        return str(exc)
    if isinstance(exc, psycopg.Error):
        return "the database server reported an error; the bot's log has the details."
    if isinstance(exc, Exception):
        return "An internal error stopped the drill; the bot's log has the details."
    return "The drill was interrupted (the bot or CLI was stopped)."


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
            error = drill.error or "see its message in the channel"
            if len(error) > 400:
                error = error[:399] + "…"
            findings.append(
                Finding(
                    condition=DRILL_FAILED,
                    database=name,
                    summary=(
                        f"The restore drill of {name} ({humanize.utc(drill.finished_at)}) "
                        f"failed: {error} Fix the cause and run /backup drill {name}; this "
                        "clears when a drill passes."
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
