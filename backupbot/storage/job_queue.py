"""Durable work: long jobs queued by whoever asks for them and run by workers. A job's
kind says what it is: `backup`, `restore` (an approved restore, with its safety backup),
`drill` or `retention` (a scheduled retention run); `bot/runtime/job_runner.py` runs each.

One contract, two implementations, chosen by the state database:

- `PostgresQueue` (PostgreSQL state): procrastinate, a well-kept PostgreSQL task queue,
  its tables in the state database. Jobs survive any restart; `backupbot serve`'s
  in-process worker and any number of `backupbot worker` processes on any machines share
  them. A job whose worker died (its procrastinate heartbeat stopped) is closed by the
  next live worker, so it never holds its server's lock.
- `LocalQueue` (SQLite state, one host): threads in this process. What is queued lives
  in the state database too (a backup's row waits at stage `queued`), and `serve`
  queues such rows again at start-up, so a restart loses nothing.

Both keep to `max_parallel_jobs` per worker and `max_parallel_per_server` jobs per
database server (`host:port`): two dumps of one small managed server slow both. A job
carries only ids; the row it names says what to do, and the job's handler claims that
row with a guarded update before doing anything, so a job delivered twice runs once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

JobHandler = Callable[[str, dict[str, Any]], None]
Submit = Callable[..., Future[Any]]
QUEUE = "backupbot"
TASK = "backupbot.job"


@dataclass(frozen=True)
class Job:
    kind: str  # "backup" | "restore" | "drill" | "retention"
    payload: dict[str, Any]  # ids only, e.g. {"backup_id": "1a2b3c4d"}
    server: str  # "host:port" of the database it reads or writes ("store": retention)
    key: str  # what makes it unique, e.g. "backup:1a2b3c4d"


class JobQueue(Protocol):
    def enqueue(self, job: Job) -> None:
        """Queue `job`; returns once it is recorded (durably, on PostgreSQL)."""

    def start_worker(self, handler: JobHandler) -> None:
        """Run queued jobs with `handler` in the background until `stop`."""

    def stop(self, timeout: float = 10.0) -> None:
        """Take no more jobs; running ones finish (or are interrupted by their owner)."""

    def idle(self) -> bool:
        """Nothing queued or running (tests and benchmarks wait on this)."""


class LocalQueue:
    """In-process jobs with the same limits as the shared queue. `submit` runs a callable
    on the long-work pool (`bot/runtime/jobs.py`), so waiting for idle covers queued jobs."""

    def __init__(self, submit: Submit, *, max_parallel: int, per_server: int) -> None:
        self._submit = submit
        self._max_parallel = max_parallel
        self._per_server = per_server
        self._lock = threading.Lock()
        self._pending: deque[Job] = deque()
        self._running: dict[str, int] = {}  # server -> running jobs
        self._handler: JobHandler | None = None
        self._stopped = False

    def enqueue(self, job: Job) -> None:
        with self._lock:
            self._pending.append(job)
        self._pump()

    def start_worker(self, handler: JobHandler) -> None:
        with self._lock:
            self._handler = handler
            self._stopped = False
        self._pump()

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stopped = True  # what is still pending stays queued in its rows

    def idle(self) -> bool:
        with self._lock:
            return not self._pending and not any(self._running.values())

    def _pump(self) -> None:
        """Start every pending job that fits the limits, oldest first."""
        while True:
            with self._lock:
                job = self._next_runnable()
                if job is None:
                    return
                self._running[job.server] = self._running.get(job.server, 0) + 1
            self._submit(self._run, job)

    def _next_runnable(self) -> Job | None:
        if self._handler is None or self._stopped:
            return None
        if sum(self._running.values()) >= self._max_parallel:
            return None
        for job in self._pending:
            if self._running.get(job.server, 0) < self._per_server:
                self._pending.remove(job)
                return job
        return None

    def _run(self, job: Job) -> None:
        handler = self._handler
        try:
            if handler is not None:
                handler(job.kind, job.payload)
        finally:
            with self._lock:
                self._running[job.server] -= 1
            self._pump()


def _slot_lock(server: str, slot: int) -> str:
    """A procrastinate lock: one of a server's `max_parallel_per_server` slots (jobs that
    hold one lock run one at a time, so a server runs at most that many at once)."""
    return f"server:{server}:{slot}"


class PostgresQueue:
    """procrastinate on the state database. `conninfo` is a libpq URL."""

    def __init__(self, conninfo: str, *, max_parallel: int, per_server: int) -> None:
        self._conninfo = conninfo
        self._max_parallel = max_parallel
        self._per_server = per_server
        self._defer_app: Any = None  # opened on the first enqueue (CLI start-up stays fast)
        self._defer_pool: Any = None
        self._defer_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._ended: dict[int, bool] = {}  # job id -> succeeded, until the queue has it
        self._failed: BaseException | None = None

    # -- enqueueing (any thread) ------------------------------------------------------

    def enqueue(self, job: Job) -> None:
        import procrastinate
        import procrastinate.exceptions

        with self._defer_lock:
            if self._defer_app is None:
                from psycopg_pool import NullConnectionPool

                # A fresh connection per enqueue (a few ms): after a restart of the state
                # database a pool would make the listener wait on its reconnect backoff,
                # past Slack's 3-second acknowledgement.
                self._defer_pool = NullConnectionPool(self._conninfo, max_size=8, open=True)
                connector = procrastinate.SyncPsycopgConnector()
                self._defer_app = procrastinate.App(connector=connector).open(self._defer_pool)
            task = self._defer_app.configure_task(
                TASK,
                queue=QUEUE,
                lock=self._free_slot(job.server),
                queueing_lock=job.key,
            )
            with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
                task.defer(kind=job.kind, payload=job.payload)

    def _free_slot(self, server: str) -> str:
        """The server's slot with the fewest waiting or running jobs. Two processes that
        enqueue at once may pick the same slot: that only delays one job, never breaks
        the limit."""
        if self._per_server == 1:
            return _slot_lock(server, 0)
        with self._defer_pool.connection() as conn:
            rows = conn.execute(
                "SELECT lock, count(*) FROM procrastinate_jobs WHERE queue_name = %s "
                "AND status IN ('todo', 'doing') AND lock LIKE %s GROUP BY lock",
                (QUEUE, f"server:{server}:%"),
            ).fetchall()
        busy = {str(lock): int(n) for lock, n in rows}
        slots = range(self._per_server)
        return _slot_lock(server, min(slots, key=lambda i: busy.get(_slot_lock(server, i), 0)))

    # -- the worker (its own thread and event loop) --------------------------------------

    def start_worker(self, handler: JobHandler) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(handler,), name="queue-worker", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the job queue's worker did not start within 30 s")
        if self._failed is not None:
            raise RuntimeError(f"the job queue's worker could not start: {self._failed}")

    def _run(self, handler: JobHandler) -> None:
        try:
            asyncio.run(self._work(handler))
        except BaseException as exc:
            log.exception("the job queue's worker stopped")
            self._failed = exc
            self._ready.set()

    async def _work(self, handler: JobHandler) -> None:
        import procrastinate

        # (procrastinate's async pool checks its connections itself)
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=self._conninfo))

        @app.task(name=TASK, queue=QUEUE, pass_context=True)
        def run_job(context: Any, kind: str, payload: dict[str, Any]) -> None:
            # The outcome is remembered until the queue has it: a state database that is
            # away just as a job ends would otherwise leave the job `doing` (holding its
            # server's slot) under a worker that is alive and beating.
            try:
                handler(kind, payload)
            except BaseException:
                self._ended[context.job.id] = False
                raise
            self._ended[context.job.id] = True

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with app.open_async():
            sweeper = asyncio.create_task(self._close_stalled(app))
            self._ready.set()
            await self._supervise(app)
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sweeper

    async def _supervise(self, app: Any) -> None:
        """Run procrastinate's worker until `stop`; a worker that ends by itself (its
        connection to the state database was lost: the database restarted or was away) is
        started again, after a pause that grows to 15 s, so queued jobs keep running."""
        assert self._stop is not None
        stopping = asyncio.create_task(self._stop.wait())
        pause = 1.0
        while not self._stop.is_set():
            started = time.monotonic()
            worker = asyncio.create_task(
                app.run_worker_async(
                    queues=[QUEUE],
                    concurrency=self._max_parallel,
                    install_signal_handlers=False,
                    listen_notify=True,
                    # A job whose server slot frees up starts at the next poll.
                    fetch_job_polling_interval=0.5,
                    update_heartbeat_interval=5.0,
                    stalled_worker_timeout=30.0,
                    delete_jobs="successful",
                )
            )
            await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if self._stop.is_set():
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker
                return
            error = worker.exception() if not worker.cancelled() else None
            log.warning(
                "the job queue's worker ended (%s); starting it again in %.0f s",
                error or "no error",
                pause,
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(stopping), pause)
            pause = 1.0 if time.monotonic() - started > 60 else min(pause * 2, 15.0)

    async def _close_stalled(self, app: Any) -> None:
        """Jobs whose worker stopped beating stay `doing` and would hold their server's
        lock for ever: mark them failed (their rows are taken over separately)."""
        from procrastinate.jobs import Status

        while True:
            await asyncio.sleep(15)
            await self._close_ended(app)
            try:
                stalled = await app.job_manager.get_stalled_jobs(
                    queue=QUEUE, seconds_since_heartbeat=30
                )
                for job in stalled:
                    log.warning("closing job %s: its worker stopped", job.id)
                    await app.job_manager.finish_job_by_id_async(
                        job_id=job.id, status=Status.FAILED, delete_job=False
                    )
            except Exception:
                log.warning("could not look for stalled jobs", exc_info=True)

    async def _close_ended(self, app: Any) -> None:
        """Jobs this process ran to the end but the queue still shows `doing` (their end
        was not written): written now, with the outcome the job had."""
        from procrastinate.jobs import Status

        for job_id, ok in list(self._ended.items()):
            try:
                [job] = list(await app.job_manager.list_jobs_async(id=job_id)) or [None]
                if job is not None and job.status == Status.DOING.value:
                    log.warning("closing job %s: its end was not recorded", job_id)
                    status = Status.SUCCEEDED if ok else Status.FAILED
                    await app.job_manager.finish_job_by_id_async(
                        job_id=job_id, status=status, delete_job=ok
                    )
                self._ended.pop(job_id, None)
            except Exception:
                log.warning("could not check job %s", job_id, exc_info=True)

    def idle(self) -> bool:
        import psycopg

        with psycopg.connect(self._conninfo) as conn:
            row = conn.execute(
                "SELECT count(*) FROM procrastinate_jobs "
                "WHERE queue_name = %s AND status IN ('todo', 'doing')",
                (QUEUE,),
            ).fetchone()
        return row is not None and row[0] == 0

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop, self._loop = self._loop, self._stop, None
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # it closed in between
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._defer_lock:
            if self._defer_app is not None:
                with contextlib.suppress(Exception):
                    self._defer_app.close()
                with contextlib.suppress(Exception):
                    self._defer_pool.close()
                self._defer_app = None


def schema_sql() -> str:
    """procrastinate's schema, applied by migration 0005 on PostgreSQL state."""
    from procrastinate.schema import SchemaManager

    return SchemaManager.get_schema()
