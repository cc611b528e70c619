"""Clean-up after restore drills: dropping a drill's scratch database (only ever one
named in the drills table), and failing the drills a stopped bot left."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from backupbot.clock import Clock
from backupbot.commands.drill_model import (
    SCRATCH_PREFIX,
    STOPPED,
    failure_text,
    record_drill_incident,
    scratch_target,
)
from backupbot.commands.restore_model import BOT_ACTOR, record_incident
from backupbot.commands.restore_targets import Targets
from backupbot.commands.restore_workdir import remove_work_dirs
from backupbot.errors import BackupbotError
from backupbot.settings import DatabaseSettings
from backupbot.storage.drills import FAILED, DrillLog, DrillRecord
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.liveness import owner_is_dead
from backupbot.storage.pgadmin import drop_database
from backupbot.storage.restores import FAILED as RESTORE_FAILED
from backupbot.storage.restores import RestoreRequests

log = logging.getLogger(__name__)


class DrillCleanup:
    """Drops scratch databases and fails abandoned drills."""

    def __init__(
        self,
        *,
        databases: Mapping[str, DatabaseSettings],
        drills: DrillLog,
        restores: RestoreRequests,
        incidents: IncidentLog,
        clock: Clock,
        targets: Targets,
        work: Path | None = None,
    ) -> None:
        """`work`: where restores unpack archives (`restore_workdir.py`)."""
        self._work = work
        self._databases = databases
        self._targets = targets
        self._drills = drills
        self._restores = restores
        self._incidents = incidents
        self._clock = clock

    def drop_scratch(self, record: DrillRecord) -> str:
        """Drop the scratch database (if it exists); what happened, in words."""
        if record.scratch_dropped:
            return "nothing to drop"
        db = self._databases.get(record.database)
        if db is None or not record.scratch_db.startswith(SCRATCH_PREFIX):
            log.warning("not dropping %s: not a drill scratch database it can reach", record.id)
            return f"{record.scratch_db} was left: {record.database} is no longer configured"
        now = self._clock.now()
        where = record.scratch_db
        try:
            target = scratch_target(db, record.scratch_db, self._targets, record.target_name)
            where = target.where
            drop_database(target)
        except (BackupbotError, psycopg.Error) as exc:
            log.warning("could not drop scratch database %s: %s", where, exc)
            self._record_drill(
                now,
                BOT_ACTOR,
                "drill.cleanup",
                "failed",
                record,
                scratch=where,
                error=failure_text(exc),
            )
            return f"{record.scratch_db} could not be dropped yet; the bot retries at start-up"
        self._drills.mark_dropped(record.id)
        self._record_drill(now, BOT_ACTOR, "drill.cleanup", "ok", record, scratch=where)
        return "dropped"

    def cleanup_leftovers(self, now: datetime) -> list[DrillRecord]:
        """Fail drills whose bot stopped (stale heartbeat) and drop the scratch databases
        of finished drills not yet confirmed gone (at start-up: a drop that fails is
        recorded each time). Returns the drills it changed."""
        changed = {r.id: r for r in self.fail_abandoned(now)}
        for r in self._drills.undropped():
            if self.drop_scratch(r) == "dropped":
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
                self._record_drill(
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
                self.drop_scratch(self._drills.get(r.id))
                changed[r.id] = self._drills.get(r.id)
        return list(changed.values())

    def _fail_restore(self, drill: DrillRecord, now: datetime) -> None:
        """Close the drill's restore row, which the stopped process left running."""
        if drill.restore_id is None:
            return
        message = "The bot stopped during the restore drill."
        result = {"target_state": "scratch database dropped by the drill clean-up"}
        if self._work is not None:
            remove_work_dirs(self._work, drill.restore_id)
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

    def _record_drill(
        self, at: datetime, actor: str, action: str, outcome: str, r: DrillRecord, **details: Any
    ) -> None:
        record_drill_incident(self._incidents, at, actor, action, outcome, r, **details)
