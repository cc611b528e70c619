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

`DrillService` runs drills; the drill's vocabulary (stages, scratch names, the pass/fail
rule) is in `drill_model.py`, the clean-up in `drill_cleanup.py`, the alert condition in
`drill_conditions.py`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from backupbot.clock import Clock
from backupbot.commands.click_origin import ClickOrigin
from backupbot.commands.drill_cleanup import DrillCleanup

# Re-exported: bot/composition.py imports DrillConditions from here.
from backupbot.commands.drill_conditions import DrillConditions as DrillConditions
from backupbot.commands.drill_model import (
    DRILL_USAGE,
    DrillAlreadyRunning,
    DrillStage,
    StageListener,
    backup_json,
    drill_result,
    failure_text,
    judge,
    record_drill_incident,
    scratch_name,
    scratch_target,
    start_problem,
)
from backupbot.commands.drill_review import DrillReview, DrillReviews
from backupbot.commands.restore_model import BOT_ACTOR, RestoreProgress
from backupbot.commands.restore_run import RestoreRunner
from backupbot.commands.restore_targets import Targets
from backupbot.commands.restore_workdir import work_root
from backupbot.commands.status import DrillSummary
from backupbot.commands.status_sources import DrillHistory
from backupbot.errors import BackupbotError, UsageError
from backupbot.phrases import Phrase
from backupbot.settings import DatabaseSettings, RestoreSettings
from backupbot.storage.catalog import SUCCEEDED, BackupCatalog, BackupRecord
from backupbot.storage.drills import FAILED, PASSED, DrillLog, DrillRecord, new_drill_id
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.liveness import owner_is_dead, process_identity
from backupbot.storage.restores import DRILL, NewRestore, RestoreRecord, RestoreRequests
from backupbot.storage.restores import SUCCEEDED as RESTORE_SUCCEEDED

log = logging.getLogger(__name__)


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
        targets: Targets | None = None,
    ) -> None:
        self._databases = {d.name: d for d in databases}
        self._targets = targets or Targets()
        self._drills = drills
        self._catalog = catalog
        self._restores = restores
        self._runner = runner
        self._incidents = incidents
        self._clock = clock
        self._settings = settings
        self._heartbeat_seconds = heartbeat_seconds
        self._history = DrillHistory(drills, databases, settings)  # what status reads
        self._cleanup = DrillCleanup(
            databases=self._databases,
            drills=drills,
            restores=restores,
            incidents=incidents,
            clock=clock,
            targets=self._targets,
            work=work_root(settings),
        )

    @property
    def database_names(self) -> list[str]:
        return list(self._databases)

    def rto_minutes(self, database: str) -> int:
        return self._history.rto_minutes(database)

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
            raise DrillAlreadyRunning(current)  # the insert below decides a race
        drill_id = new_drill_id()
        scratch = scratch_name(database, drill_id)
        target_name = self._targets.drill_target(database)
        target = scratch_target(db, scratch, self._targets, target_name)
        backup = self.latest_verified(database)
        problem = start_problem(database, backup, scratch, target)
        result: dict[str, Any] = {"scratch": target.where}
        if backup is not None:
            result["backup"] = backup_json(backup)
            result["backup_age_seconds"] = round((now - backup.started_at).total_seconds())
        record = self._insert(
            drill_id,
            database=database,
            scratch_db=scratch,
            actor=actor,
            rto_minutes=self.rto_minutes(database),
            backup_id=backup.id if backup else None,
            now=now,
            result=result,
            scratch_dropped=problem is not None,  # nothing will be created: nothing to drop
            target_name=target_name,
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

    def _insert(self, drill_id: str, *, database: str, now: datetime, **values: Any) -> DrillRecord:
        """The new drill's row. Another drill of `database` running in a live process
        wins (`DrillAlreadyRunning`); one whose process died is failed first."""
        for _attempt in range(2):
            record = self._drills.create(drill_id, database=database, now=now, **values)
            if record is not None:
                return record
            if (current := self._drills.running(database, now, owner_is_dead)) is not None:
                raise DrillAlreadyRunning(current)
            self.fail_abandoned(now)
        current = self._drills.latest(database)
        assert current is not None  # the running drill that holds the slot
        raise DrillAlreadyRunning(current)

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
            error = failure_text(exc)
            if isinstance(exc, Exception) and not isinstance(exc, BackupbotError):
                log.exception("restore drill %s crashed", record.id)
        finally:
            stop.set()
        result = drill_result(record, restore)
        result["cleanup"] = self._cleanup.drop_scratch(self._drills.get(record.id))
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
        target = scratch_target(db, record.scratch_db, self._targets, record.target_name)
        now = self._clock.now()
        restore = self._restores.create(
            NewRestore(
                database=record.database,
                backup_id=backup.id,
                mode=DRILL,
                target_db=record.scratch_db,
                target_where=target.where,
                target_name=record.target_name,
                requester=record.actor,
                reason=f"restore drill {record.id}",
                required_approvals=0,
                expires_at=now,
                preview={
                    "backup": backup_json(backup),
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

    def _finish(
        self,
        record: DrillRecord,
        status: str,
        result: dict[str, Any],
        error: Phrase | str | None,
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
            error=None if error is None else str(error),
            total_seconds=total,
            rto_minutes=record.rto_minutes,
            within_rto=result.get("within_rto"),
            timings=result.get("timings"),
            tables=result.get("tables"),
            rows=result.get("rows"),
            schema=result.get("schema"),
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
        return self._cleanup.cleanup_leftovers(now)  # see DrillCleanup

    def fail_abandoned(self, now: datetime) -> list[DrillRecord]:
        return self._cleanup.fail_abandoned(now)  # see DrillCleanup

    # -- queries ------------------------------------------------------------------------

    def get(self, drill_id: str) -> DrillRecord:
        return self._drills.get(drill_id)

    def set_message(self, drill_id: str, channel: str, ts: str) -> None:
        self._drills.set_message(drill_id, channel, ts)

    def recent(self, database: str, limit: int = 6) -> list[DrillRecord]:
        return self._history.recent(database, limit)  # newest first

    def latest(self, database: str) -> DrillRecord | None:
        return self._drills.latest(database)  # running or finished

    def latest_finished(self, database: str) -> DrillRecord | None:
        return self._drills.latest(database, finished=True)

    def review(self, drill_id: str, user: str, origin: ClickOrigin | None = None) -> DrillReview:
        """A person's review of a finished drill (`drill_review.py`)."""
        return DrillReviews(self._drills, self._incidents, self._clock).review(
            drill_id, user, origin
        )

    def latest_passed(self, database: str) -> DrillRecord | None:
        return self._drills.latest_passed(database)

    def server(self, database: str) -> str:
        """Where a drill of `database` restores: host:port (and the target's name)."""
        name = self._targets.drill_target(database)
        conn = scratch_target(self._db(database), "postgres", self._targets, name)
        return f"{conn.host}:{conn.port}" + (f" (target {name})" if name else "")

    def watched_since(self, database: str) -> datetime | None:
        """When the bot first backed up `database`: a database never drilled is due a
        drill counted from then."""
        return self._catalog.first_started(database)

    def summaries(self, database: str, limit: int = 7) -> list[DrillSummary]:
        return self._history.summaries(database, limit)  # what `/backup status` shows

    def history(self, since: datetime, database: str | None = None) -> list[DrillRecord]:
        return self._history.history(since, database)  # oldest first

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

    def latest_verified(self, database: str) -> BackupRecord | None:
        """The newest verified backup whose artifact retention has not deleted."""
        for backup in self._catalog.recent(database, 200):
            if backup.status == SUCCEEDED and backup.deleted_at is None:
                return backup
        return None

    def _record(
        self, at: datetime, actor: str, action: str, outcome: str, r: DrillRecord, **details: Any
    ) -> None:
        record_drill_incident(self._incidents, at, actor, action, outcome, r, **details)
