"""`backupbot serve` and `backupbot worker`: the long-running processes, and how they
stop (SIGTERM or SIGINT: take no more work, interrupt what runs, exit within ~10 s)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from backupbot.bot.runtime.sweeper import Sweeper
from backupbot.bot.services import Services
from backupbot.bot.slack.flows import Flows
from backupbot.bot.slack.progress_sender import give_up_all
from backupbot.errors import UsageError

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 8.0  # running work gets this long to stop after SIGTERM
# Socket Mode: how often the client pings Slack. A dropped connection is noticed within
# one interval, a silent one after about four (slack_sdk's default of 10 s means 40-50 s).
SOCKET_PING_SECONDS = 3
SWEEP_SECONDS = 15.0  # how often serve looks for abandoned work and expired requests


def _join_workers(deadline: float) -> list[str]:
    """Wait until `deadline` for every worker thread (jobs, scheduled runs) to finish;
    the names of those still running."""
    me = threading.current_thread()
    workers = [t for t in threading.enumerate() if t is not me and not t.daemon]
    for thread in workers:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in workers if t.is_alive()]


def _metrics(services: Services, leader: Any = None) -> Any:
    from backupbot.bot.runtime.metrics import StateCollector, registry
    from backupbot.bot.slack import delivery

    return registry(
        StateCollector(
            services.engine,
            services.settings,
            leader=(lambda: bool(leader.leading)) if leader is not None else (lambda: False),
            problems=lambda: len(delivery.HEALTH.problems()),
        )
    )


def worker(services: Services, host: str, port: int) -> int:
    """Run queued jobs from the shared queue until SIGTERM or SIGINT, taking over work a
    dead process left; `--port` serves /healthz."""
    from backupbot.bot.runtime.http_server import HttpServer
    from backupbot.bot.slack.app import wsgi_app

    if services.settings.state_url.startswith("sqlite"):
        raise UsageError(
            "backupbot worker shares a queue in a PostgreSQL state database; with SQLite "
            "state (one host), backupbot serve runs the jobs itself."
        )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    services.take_over_abandoned()
    services.start_worker(services.slack_client)
    flows = Flows(services, services.slack_client)
    sweeper = Sweeper([services.take_over_abandoned, flows.deliver_results], interval=SWEEP_SECONDS)
    sweeper.start()
    http = (
        HttpServer(wsgi_app(None, metrics=_metrics(services)), host, port).start() if port else None
    )
    log.info("worker running (up to %d jobs)", services.settings.jobs.max_parallel_jobs)
    while not stop.wait(1.0):
        pass
    log.info("stopping: no new jobs; interrupting running backups")
    if http is not None:
        http.close()
    sweeper.stop()
    return _stop_work(services)


def _stop_work(services: Services) -> int:
    """Interrupt running work (each records itself as interrupted), take no more jobs,
    and exit once it has, or after the grace period."""
    services.backups.interrupt_all()
    services.restores.interrupt_all()  # restores and drills: pg_restore killed, recorded
    give_up_all()  # results still being retried against a slow Slack: stop trying
    services.queue.stop()
    services.jobs.shutdown(wait=False)
    still_running = _join_workers(time.monotonic() + SHUTDOWN_GRACE_SECONDS)
    if still_running:
        log.error(
            "work was still running %.0f s after the stop signal (%s); exiting anyway: "
            "any process fails it once its heartbeat is 45 s old",
            SHUTDOWN_GRACE_SECONDS,
            ", ".join(still_running),
        )
        logging.shutdown()
        os._exit(1)
    log.info("stopped")
    return 0


def serve(services: Services, host: str, port: int) -> int:
    """Run the bot until SIGTERM or SIGINT, then stop within about 10 s: stop taking
    requests and schedules, interrupt running backups (recorded as failed, nothing kept),
    wait up to `SHUTDOWN_GRACE_SECONDS` for running work, exit."""
    from backupbot.bot.runtime.http_server import HttpServer
    from backupbot.bot.runtime.schedule_actions import build_scheduler
    from backupbot.bot.slack.app import build_app, build_web_client, wsgi_app

    services.requeue_waiting()  # before the takeover, which would fail them
    services.take_over_abandoned()
    app = build_app(services)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    flows = Flows(services, build_web_client(services))
    flow = flows.restore
    sweeper = Sweeper(
        [
            services.take_over_abandoned,
            flow.expire_due,
            flow.remind_due,
            flow.announce_pending,
            flows.deliver_results,
        ],
        interval=SWEEP_SECONDS,
    )
    sweeper.run_once()
    sweeper.start()
    if services.settings.jobs.in_process_worker or not services.settings.state_url.startswith(
        "postgres"
    ):
        services.start_worker(build_web_client(services))
    scheduler = build_scheduler(services, build_web_client(services))
    scheduler.start()
    socket_mode: Any = None
    if services.slack.socket_mode:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        assert services.slack.app_token is not None
        socket_mode = SocketModeHandler(
            app,
            services.slack.app_token.get_secret_value(),
            ping_interval=SOCKET_PING_SECONDS,
        )
        socket_mode.connect()
        http = HttpServer(wsgi_app(None, metrics=_metrics(services, scheduler)), host, port).start()
        log.info("connected to Slack in Socket Mode; health check on port %d", port)
    else:
        http = HttpServer(wsgi_app(app, metrics=_metrics(services, scheduler)), host, port).start()
        log.info("serving Slack events over HTTP on %s:%d/slack/events", host, port)
    while not stop.wait(1.0):
        pass
    log.info("stopping: no new requests or scheduled runs; interrupting running backups")
    if socket_mode is not None:
        socket_mode.close()
    http.close()
    sweeper.stop()
    scheduler.stop()
    return _stop_work(services)
