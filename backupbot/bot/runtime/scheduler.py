"""The scheduler inside `backupbot serve`: APScheduler 3 with its job store in the state
database, run by one leader process at a time.

Two guards make each scheduled firing happen exactly once, however many `serve`
processes share a state database:

1. Leadership: a PostgreSQL session advisory lock, held on a dedicated connection. Only
   the holder runs APScheduler; the others retry every 30 s and take over when the
   leader's connection goes away. (SQLite state means one host; every process counts as
   leader there and guard 2 alone keeps runs single.)
2. The ledger (`storage/schedule_runs.py`): a run is claimed by inserting its unique
   (job, scheduled time) row before anything happens.

APScheduler only decides *when* to call; the work is `ScheduleRunner.run_due(now)` and
the other single-step functions, which tests call directly with a controlled clock. Its
persistent job store keeps each job's next run time across restarts, so a firing that
fell while no process led runs once at start-up (misfire grace = `schedules.grace_hours`);
a catch-up `run_due` at start-up covers the rest, and the ledger dedupes the two.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

from backupbot.clock import Clock
from backupbot.commands.schedule import ScheduleRunner

log = logging.getLogger(__name__)

_LEADER_LOCK = 0x62627363  # "bbsc": the advisory lock id of the scheduler leader
JOBS_TABLE = "apscheduler_jobs"

# APScheduler's persistent job store references job functions by import path, so the
# function it calls (`fire`) finds its scheduler here, by the key stored with the job.
_ACTIVE: dict[str, BotScheduler] = {}


def fire(scheduler_key: str, job: str) -> None:
    """What APScheduler calls: one step of `job` at the current time."""
    scheduler = _ACTIVE.get(scheduler_key)
    if scheduler is None:
        log.warning("scheduled job %s fired for a scheduler that has stopped", job)
        return
    scheduler.fire(job)


def process_name() -> str:
    """Who claims a run in the ledger: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LeaderLock:
    """A PostgreSQL session advisory lock on its own connection; always granted on SQLite."""

    def __init__(self, engine: Engine, key: int = _LEADER_LOCK) -> None:
        self._engine = engine
        self._key = key
        self._conn: Connection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None or self._engine.dialect.name != "postgresql"

    def try_acquire(self) -> bool:
        if self._engine.dialect.name != "postgresql":
            return True
        if self._conn is not None:
            return True
        conn = self._engine.connect()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}).scalar()
            conn.commit()
        except Exception:
            conn.close()
            raise
        if got:
            self._conn = conn
            return True
        conn.close()
        return False

    def still_held(self) -> bool:
        """False once the lock's connection is gone (the server restarted, a network cut)."""
        if self._conn is None:
            return self._engine.dialect.name != "postgresql"
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
            return True
        except Exception:
            log.warning("lost the scheduler leader connection; stepping down")
            self._drop()
            return False

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            self._conn.commit()
        except Exception:
            log.debug("could not unlock the leader lock; closing its connection frees it")
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                log.debug("closing the leader connection failed", exc_info=True)


@dataclass(frozen=True)
class Interval:
    """A housekeeping step APScheduler runs every `seconds` on the leader."""

    seconds: int
    step: Callable[[datetime], Any]


class BotScheduler:
    def __init__(
        self,
        *,
        engine: Engine,
        runner: ScheduleRunner,
        intervals: Mapping[str, Interval],
        clock: Clock,
        grace: timedelta,
        on_leader: Callable[[datetime], Any] = lambda _now: None,
        retry_seconds: float = 30.0,
    ) -> None:
        self.key = uuid.uuid4().hex
        self._engine = engine
        self._runner = runner
        self._intervals = dict(intervals)
        self._clock = clock
        self._grace = grace
        self._on_leader = on_leader
        self._retry = retry_seconds
        self._lock = LeaderLock(engine)
        self._scheduler: Any = None  # apscheduler BackgroundScheduler while leading
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        return self._scheduler is not None

    # -- what APScheduler calls ------------------------------------------------------------

    def fire(self, job: str) -> None:
        now = self._clock.now()
        interval = self._intervals.get(job)
        if interval is not None:
            interval.step(now)
        else:
            self._runner.run_due(now, only=job)

    # -- leadership --------------------------------------------------------------------------

    def step(self) -> bool:
        """One round of the leadership loop: take the lead if free, step down if lost.
        Returns whether this process leads afterwards."""
        if self.leading:
            if not self._lock.still_held():
                self._stop_apscheduler()
            return self.leading
        if self._lock.try_acquire():
            self._lead()
        return self.leading

    def start(self) -> None:
        """Run the leadership loop in a background thread."""
        _ACTIVE[self.key] = self

        def loop() -> None:
            while True:
                try:
                    self.step()
                except Exception:
                    log.exception("scheduler leadership step failed; retrying")
                if self._stop.wait(self._retry):
                    return

        self._thread = threading.Thread(target=loop, name="scheduler-leader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._stop_apscheduler()
        self._lock.release()
        _ACTIVE.pop(self.key, None)

    def _lead(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        _ACTIVE[self.key] = self
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self._engine, tablename=JOBS_TABLE)},
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": max(1, int(self._grace.total_seconds())),
            },
            timezone=UTC,
        )
        scheduler.start(paused=True)
        self._sync_jobs(scheduler)
        scheduler.resume()
        self._scheduler = scheduler
        log.info("this process now runs the schedules (%d jobs)", len(scheduler.get_jobs()))
        now = self._clock.now()
        threading.Thread(
            target=self._catch_up, args=(now,), name="scheduler-catch-up", daemon=True
        ).start()

    def _catch_up(self, now: datetime) -> None:
        try:
            self._on_leader(now)
            self._runner.run_due(now)
        except Exception:
            log.exception("the start-up catch-up of scheduled jobs failed")

    def _sync_jobs(self, scheduler: Any) -> None:
        """Make the stored jobs match the configuration. A job whose trigger is unchanged
        keeps its stored next run time (so a firing missed while no process led still
        fires); only the key of this process is updated."""
        from apscheduler.triggers.interval import IntervalTrigger

        wanted: dict[str, Any] = {j.name: j.trigger() for j in self._runner.jobs}
        wanted.update(
            {name: IntervalTrigger(seconds=i.seconds) for name, i in self._intervals.items()}
        )
        for stored in scheduler.get_jobs():
            if stored.id not in wanted:
                scheduler.remove_job(stored.id)
        for name, trigger in wanted.items():
            stored = scheduler.get_job(name)
            if stored is not None and repr(stored.trigger) == repr(trigger):
                scheduler.modify_job(name, args=[self.key, name])
            else:
                scheduler.add_job(
                    fire,
                    trigger,
                    args=[self.key, name],
                    id=name,
                    name=name,
                    replace_existing=True,
                )

    def _stop_apscheduler(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            try:
                scheduler.shutdown(wait=False)
            except Exception:
                log.debug("stopping APScheduler failed", exc_info=True)

    def stored_jobs(self) -> dict[str, datetime | None]:
        """The job store's view: job id → next run time (for tests and diagnostics)."""
        if self._scheduler is None:
            return {}
        return {j.id: j.next_run_time for j in self._scheduler.get_jobs()}
