"""The `backupbot` command line: the same operations as Slack, for CI/CD and for when
Slack is down. Actions are recorded with the actor `cli:<os user>`.

Exit codes: 0 success, 1 the operation failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from backupbot.bot.composition import Services, build_services, load
from backupbot.bot.logging_setup import configure_logging
from backupbot.bot.runtime.sweeper import Sweeper
from backupbot.bot.slack.blocks.retention import retention_summary
from backupbot.bot.slack.delivery import post
from backupbot.bot.slack.flows.drill import DrillFlow
from backupbot.bot.slack.flows.restore import RestoreFlow
from backupbot.bot.slack.progress_sender import give_up_all
from backupbot.commands import humanize
from backupbot.commands.backup import Progress
from backupbot.commands.drill import DrillStage
from backupbot.commands.parse import MAX_LOG
from backupbot.commands.restore_run import RestoreProgress
from backupbot.commands.retention import describe_plan, describe_report
from backupbot.commands.schedule import jobs_from_settings
from backupbot.commands.status import AlertSummary, ChecklistSummary, DatabaseStatus, rto_trend
from backupbot.errors import BackupbotError, ConfigError, UsageError
from backupbot.storage.catalog import SUCCEEDED, BackupRecord
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.pgtools import find_binaries

log = logging.getLogger(__name__)


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="backupbot", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="config file (default: $BACKUPBOT_CONFIG or ./backupbot.yml)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    backup = sub.add_parser("backup", help="take a backup").add_subparsers(
        dest="backup_command", required=True, metavar="now"
    )
    now = backup.add_parser("now", help="take a verified backup; prints its id")
    now.add_argument("database")
    now.add_argument("--label", help="e.g. pre-deploy")

    restore = sub.add_parser("restore", help="restore a backup").add_subparsers(
        dest="restore_command", required=True, metavar="{request,run}"
    )
    for name, help_text in (
        ("request", "post a restore request in Slack; a second person approves it there"),
        ("run", "restore now without approval (--break-glass), for when Slack is down"),
    ):
        r = restore.add_parser(name, help=help_text)
        r.add_argument("database")
        r.add_argument("backup", nargs="?", default="latest", help="latest (default) or an id")
        where = r.add_mutually_exclusive_group()
        where.add_argument("--into", metavar="TARGET", help="restore into this database")
        where.add_argument(
            "--in-place", action="store_true", help="overwrite the source (safety backup first)"
        )
        r.add_argument("--reason", help="why; shown to approvers and recorded")
        if name == "request":
            r.add_argument(
                "--slack-user",
                metavar="UID",
                help="your Slack user id (U...), so you cannot approve your own request",
            )
        else:
            r.add_argument(
                "--break-glass",
                action="store_true",
                help="confirm: run without a second person's approval (recorded as such)",
            )

    drill = sub.add_parser(
        "drill",
        help="restore drill: restore the latest verified backup into a scratch database, "
        "verify it, time it against the RTO, drop it (exit 0 pass, 1 fail)",
    )
    drill.add_argument("database")

    retention = sub.add_parser(
        "retention",
        help="show what retention would delete and why (dry run); --apply deletes it now",
    )
    retention.add_argument("database", nargs="?", help="one database (default: all)")
    retention.add_argument("--apply", action="store_true", help="delete now, and record it")
    retention.add_argument("--json", action="store_true")

    status = sub.add_parser("status", help="where each database's backups stand")
    status.add_argument("database", nargs="?")
    status.add_argument("--json", action="store_true")

    log_p = sub.add_parser(
        "log", help="the incident log, newest first; `log verify` checks its hash chain"
    )
    log_p.add_argument("check", nargs="?", choices=["verify"], help="check the hash chain")
    log_p.add_argument("--limit", type=int, default=20)
    log_p.add_argument("--json", action="store_true")

    worker = sub.add_parser(
        "worker",
        help="run queued backups, restores, drills and retention runs (PostgreSQL state); "
        "any number may run",
    )
    worker.add_argument("--port", type=int, default=int(os.environ.get("PORT", "0")))
    worker.add_argument("--host", default="0.0.0.0")
    serve = sub.add_parser("serve", help="run the Slack bot (Socket Mode or HTTP)")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    serve.add_argument("--host", default="0.0.0.0")

    config = sub.add_parser("config", help="configuration tools").add_subparsers(
        dest="config_command", required=True, metavar="check"
    )
    check = config.add_parser("check", help="validate the config file and environment")
    check.add_argument(
        "--live", action="store_true", help="also connect to every database and the store"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging("WARNING", "text")
    try:
        settings = load(args.config)
        if args.command in ("serve", "worker"):
            configure_logging(settings.logging.level, settings.logging.format)
        if args.command == "config":
            return _config_check(settings, args.live)
        services = build_services(settings)
        try:
            return _dispatch(services, args)
        finally:
            services.close()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BackupbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _dispatch(services: Services, args: argparse.Namespace) -> int:
    if args.command == "backup":
        return _backup_now(services, args.database, args.label)
    if args.command == "status":
        return _status(services, args.database, args.json)
    if args.command == "retention":
        return _retention(services, args.database, args.apply, args.json)
    if args.command == "log" and args.check == "verify":
        return _log_verify(services, args.json)
    if args.command == "log":
        if not 1 <= args.limit <= 10 * MAX_LOG:
            raise UsageError(f"--limit must be between 1 and {10 * MAX_LOG}.")
        return _log(services, args.limit, args.json)
    if args.command == "serve":
        return _serve(services, args.host, args.port)
    if args.command == "worker":
        return _worker(services, args.host, args.port)
    if args.command == "restore" and args.restore_command == "request":
        return _restore_request(services, args)
    if args.command == "restore":
        return _restore_run(services, args)
    if args.command == "drill":
        return _drill(services, args.database)
    raise UsageError(f"unknown command {args.command}")


def _backup_now(services: Services, database: str, label: str | None) -> int:
    if services.settings.database(database) is None:
        names = ", ".join(services.settings.database_names)
        raise UsageError(
            f"There is no configured database named {database!r}. Configured: {names}."
        )

    def progress(p: Progress) -> None:
        done = f" ({humanize.size(p.bytes_done)})" if p.bytes_done else ""
        print(f"[{p.backup_id}] {p.stage}{done}", file=sys.stderr)

    record = services.backups.backup_now(database, cli_actor(), label, progress)
    if record.status != SUCCEEDED:
        print(f"backup {record.id} of {database} failed: {record.error}", file=sys.stderr)
        return 1
    print(
        f"backup {record.id} of {database} verified: {humanize.size(record.stored_size)} "
        f"in {humanize.duration(record.duration)}, sha256 {record.sha256}, at {record.location}",
        file=sys.stderr,
    )
    print(record.id)
    return 0


def _restore_flow(services: Services) -> RestoreFlow | None:
    if services.slack_client is None or services.settings.slack is None:
        return None
    return RestoreFlow(services, services.slack_client)


def _restore_request(services: Services, args: argparse.Namespace) -> int:
    flow = _restore_flow(services)
    if flow is None:
        raise UsageError(
            "restore request needs Slack (SLACK_BOT_TOKEN and a `slack:` section), where the "
            "request is approved. Without Slack: restore run --break-glass --reason TEXT."
        )
    requester = args.slack_user or cli_actor()
    record = services.restores.request(
        args.database,
        args.backup,
        requester=requester,
        into=args.into,
        in_place=args.in_place,
        reason=args.reason,
    )
    record = flow.post_request(record)
    print(
        f"restore request {record.id} posted in {record.channel}: {args.database} backup "
        f"{record.backup_id} into {record.target_db}; needs {record.required_approvals} "
        f"approval(s) before {humanize.utc(record.expires_at)}",
        file=sys.stderr,
    )
    print(record.id)
    return 0


def _restore_run(services: Services, args: argparse.Namespace) -> int:
    if not args.break_glass:
        raise UsageError(
            "restore run restores without a second person's approval: confirm with "
            "--break-glass --reason TEXT, or use `restore request` to ask in Slack."
        )
    if not args.reason:
        raise UsageError("A break-glass restore needs --reason TEXT; it goes in the record.")

    def progress(p: RestoreProgress) -> None:
        print(f"[{p.restore_id}] {p.stage}", file=sys.stderr)

    record = services.restores.break_glass(
        args.database,
        args.backup,
        actor=cli_actor(),
        reason=args.reason,
        into=args.into,
        in_place=args.in_place,
        on_progress=progress,
    )
    flow = _restore_flow(services)
    announced = bool(flow and flow.announce_pending())
    res = record.result
    if record.status == "succeeded":
        print(
            f"restore {record.id}: {args.database} backup {record.backup_id} restored into "
            f"{record.target_db} and verified ({res.get('tables')} tables) in "
            f"{humanize.duration(timedelta(seconds=res.get('total_seconds') or 0))} (RTO target "
            f"{res.get('rto_minutes')} min)",
            file=sys.stderr,
        )
    else:
        print(f"restore {record.id} failed: {record.error}", file=sys.stderr)
        print(f"target: {res.get('target_state')}", file=sys.stderr)
    if res.get("safety_backup_id"):
        print(f"safety backup: {res['safety_backup_id']}", file=sys.stderr)
    if not announced:
        print(
            "Slack was not told yet; `backupbot serve` posts the notice when it can.",
            file=sys.stderr,
        )
    print(record.id)
    return 0 if record.status == "succeeded" else 1


def _drill(services: Services, database: str) -> int:
    """Run a restore drill; posted in the channel too when Slack is configured."""
    if services.settings.database(database) is None:
        names = ", ".join(services.settings.database_names)
        raise UsageError(
            f"There is no configured database named {database!r}. Configured: {names}."
        )

    def progress(p: DrillStage) -> None:
        print(f"[{p.drill_id}] {p.stage}", file=sys.stderr)

    client = services.slack_client if services.settings.slack else None
    services.take_over_abandoned()  # a drill whose process is gone must not block this one
    [record] = DrillFlow(services, client).run(database, cli_actor(), progress)
    res = record.result
    timings = ", ".join(
        f"{stage} {humanize.duration(timedelta(seconds=sec))}"
        for stage, sec in (res.get("timings") or {}).items()
    )
    verdict = "PASSED" if record.status == "passed" else "FAILED"
    print(f"restore drill {record.id} of {database}: {verdict}", file=sys.stderr)
    if res.get("backup"):
        print(f"  backup: {res['backup']['id']}", file=sys.stderr)
    if timings:
        print(f"  stages: {timings}", file=sys.stderr)
    if record.total_seconds is not None:
        total = humanize.duration(timedelta(seconds=record.total_seconds))
        print(f"  total: {total} (RTO {record.rto_minutes} min)", file=sys.stderr)
    if record.status == "passed":
        print(f"  verified: {res.get('tables')} tables, {res.get('rows')} rows", file=sys.stderr)
    else:
        print(f"  error: {record.error}", file=sys.stderr)
    print(f"  scratch database {record.scratch_db}: {res.get('cleanup', '?')}", file=sys.stderr)
    if client is not None and record.message_ts is None:
        print("  the channel could not be told (Slack unreachable)", file=sys.stderr)
    print(record.id)
    return 0 if record.status == "passed" else 1


def _retention(services: Services, database: str | None, apply: bool, as_json: bool) -> int:
    """Dry run by default; `--apply` deletes now (actor cli:<user>) and tells the channel."""
    now = services.clock.now()
    if not apply:
        plan = services.retention.plan(database, now)
        print(json.dumps(plan.as_json(), indent=2) if as_json else "\n".join(describe_plan(plan)))
        return 0
    report = services.retention.apply(now, cli_actor(), database)
    print(json.dumps(report.as_json(), indent=2) if as_json else "\n".join(describe_report(report)))
    summary = retention_summary(report)
    if summary is not None and services.slack_client is not None and services.settings.slack:
        post(services.slack_client, services.settings.slack.channel, summary)
    return 0 if report.ok else 1


def _record_json(r: BackupRecord | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "id": r.id,
        "status": r.status,
        "started_at": r.started_at.isoformat(),
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "duration_seconds": r.duration.total_seconds() if r.duration else None,
        "stored_size": r.stored_size,
        "raw_size": r.raw_size,
        "sha256": r.sha256,
        "location": r.location,
        "label": r.label,
        "actor": r.actor,
        "error": r.error,
    }


def _status_json(s: DatabaseStatus) -> dict[str, Any]:
    return {
        "database": s.name,
        "provider": s.provider,
        "healthy": s.healthy,
        "warnings": s.warnings,
        "backups_kept": s.kept,
        "last_success": _record_json(s.last_success),
        "last_failure": _record_json(s.last_failure),
        "running": _record_json(s.running),
        "next_scheduled_backup": s.next_backup.isoformat() if s.next_backup else None,
        "drills": [
            {
                "status": d.status,
                "started_at": d.started_at.isoformat(),
                "total_seconds": d.total_seconds,
                "rto_minutes": d.rto_minutes,
                "error": d.error,
            }
            for d in s.drills
        ],
        "alerts": [_alert_json(a) for a in s.alerts],
    }


def _alert_json(a: AlertSummary) -> dict[str, Any]:
    return {
        "id": a.id,
        "condition": a.condition,
        "database": a.database,
        "summary": a.summary,
        "opened_at": a.opened_at.isoformat(),
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": a.acknowledged_at.isoformat() if a.acknowledged_at else None,
    }


def _checklist_text(c: ChecklistSummary | None) -> str:
    if c is None:
        return "checklist: not posted yet this month"
    if c.signed_off_by:
        when = humanize.utc(c.signed_off_at)
        return f"checklist {c.period}: signed off by {c.signed_off_by} on {when}"
    return f"checklist {c.period}: NOT signed off ({c.ticked} of {c.items} ticked)"


def _status(services: Services, database: str | None, as_json: bool) -> int:
    settings = services.settings
    if database is not None and settings.database(database) is None:
        raise UsageError(f"There is no configured database named {database!r}.")
    report = services.status_report(database)
    if as_json:
        print(json.dumps([_status_json(s) for s in report], indent=2))
        return 0 if all(s.healthy for s in report) else 1
    for s in report:
        ok = s.last_success
        print(f"{s.name} ({s.provider}): {'OK' if s.healthy else 'NEEDS ATTENTION'}")
        if ok:
            print(
                f"  last good backup: {humanize.age(ok.started_at, s.now)} "
                f"({humanize.utc(ok.started_at)}), {humanize.size(ok.stored_size)}, "
                f"took {humanize.duration(ok.duration)}, id {ok.id}"
            )
        else:
            print("  last good backup: never")
        if s.last_failure:
            f = s.last_failure
            print(f"  last failure: {humanize.age(f.started_at, s.now)}, id {f.id}: {f.error}")
        print(f"  backups kept: {s.kept}")
        if s.running:
            print(f"  running now: id {s.running.id}, started by {s.running.actor}")
        print(f"  next scheduled backup: {s.next_backup_text}")
        drill = s.last_drill
        if drill is None:
            print("  last restore drill: never")
        else:
            took = f"{drill.total_seconds:.0f} s" if drill.total_seconds is not None else "?"
            print(
                f"  last restore drill: {drill.status} {humanize.age(drill.started_at, s.now)}, "
                f"{took} (RTO {drill.rto_minutes} min); trend {rto_trend(s.drills)}"
            )
        for w in s.warnings:
            print(f"  ! {w}")
        for a in s.alerts:
            owner = (
                f"acknowledged by {a.acknowledged_by}" if a.acknowledged_by else "unacknowledged"
            )
            print(f"  ALERT {a.condition}: {a.summary} ({owner})")
    overall = services.bot_status()
    print(_checklist_text(overall.checklist))
    for a in overall.alerts:
        owner = f"acknowledged by {a.acknowledged_by}" if a.acknowledged_by else "unacknowledged"
        print(f"ALERT {a.condition}: {a.summary} ({owner})")
    return 0 if all(s.healthy for s in report) else 1


def _log(services: Services, limit: int, as_json: bool) -> int:
    records = services.incidents.recent(limit)
    if as_json:
        print(json.dumps([i.as_json() for i in records], indent=2))
        return 0
    for i in records:
        db = f" {i.database}" if i.database else ""
        bid = f" [{i.backup_id}]" if i.backup_id else ""
        detail = i.details.get("error") or i.details.get("reason") or ""
        print(f"{humanize.utc(i.at)}  {i.actor:<16} {i.action}{db} {i.outcome}{bid} {detail}")
    return 0


def _log_verify(services: Services, as_json: bool) -> int:
    """Walk the incident log's hash chain; exit 1 and name the first broken record."""
    check = services.incidents.verify()
    if as_json:
        print(json.dumps({"intact": check.intact, **asdict(check)}, indent=2))
    elif check.intact:
        print(f"incident log: {check.records} records, hash chain intact")
    else:
        print(
            f"incident log: hash chain BROKEN at record {check.first_broken_id}: "
            f"{check.problem}; the {check.records} records before it are intact"
        )
    return 0 if check.intact else 1


def _config_check(settings: Any, live: bool) -> int:
    import tempfile

    from backupbot.bot.composition import build_store
    from backupbot.settings import SlackCredentials
    from backupbot.storage.pgconn import redact
    from backupbot.storage.pginspect import SnapshotSession

    print(f"config OK: {len(settings.databases)} database(s): {', '.join(settings.database_names)}")
    # Where things are, as absolute paths (relative ones in the file mean next to it), and
    # never a secret: URLs are shown redacted, S3 keys not at all.
    print(f"config file: {settings.config_file or '(none; paths relative to the cwd)'}")
    state_file = settings.state_file
    if state_file is None:
        print(f"state database: {redact(settings.state_url)}")
    else:
        new = "" if state_file.exists() else ", does not exist yet"
        print(f"state database: {state_file} (SQLite{new})")
    if settings.storage.local is not None:
        print(f"store: local directory {settings.storage.local.path}")
    else:
        s3 = settings.storage.s3
        endpoint = redact(s3.endpoint_url) if s3.endpoint_url else "AWS"
        region = f", region {s3.region}" if s3.region else ""
        print(
            f"store: S3 bucket {s3.bucket}, prefix {s3.prefix or '(none)'}, "
            f"endpoint {endpoint}{region}"
        )
    work_dir = settings.restore.work_dir
    print(f"restore work dir: {work_dir or f'{tempfile.gettempdir()} (default: $TMPDIR)'}")
    if settings.backup.pg_bin_dirs:
        dirs = ", ".join(str(d) for d in settings.backup.pg_bin_dirs)
        print(f"pg_dump/pg_restore also looked for in: {dirs}")
    problems = SlackCredentials.from_env(os.environ).problems_for_serving()
    if settings.slack is None:
        problems.append("slack: no `slack:` section; `serve` needs slack.channel")
    elif not settings.slack.approvers and not settings.slack.approver_group:
        print(
            "note: no slack.approvers or slack.approver_group: anyone in the channel except "
            "the requester may approve a restore"
        )
    for p in problems:
        print(f"warning (needed for `serve`): {p}")
    now = datetime.now(UTC)
    for job in jobs_from_settings(settings):
        when = humanize.zoned(job.next_fire(now), job.timezone)
        print(f"schedule {job.name}: {job.cron} ({job.timezone}), next {when}")
    for i, level in enumerate(settings.escalation.levels):
        if not level.mention and not level.provider_support:
            print(
                f"note: escalation.levels[{i}] ({level.name}) mentions nobody; its pings only "
                "post in the alert's thread. Add Slack user or group ids to `mention`."
            )
    if not live:
        return 0
    failed = False
    try:
        build_store(settings.storage).check()
        print("store OK")
    except BackupbotError as exc:
        failed = True
        print(f"store FAILED: {exc}")
    for db in settings.databases:
        try:
            session = SnapshotSession(ConnInfo.from_url(db.url.get_secret_value()))
            try:
                bins = find_binaries(session.server.major, settings.backup.pg_bin_dirs)
            finally:
                session.close()
            print(f"{db.name} OK: PostgreSQL {session.server.version}, pg_dump {bins.version}")
        except BackupbotError as exc:
            failed = True
            print(f"{db.name} FAILED: {exc}")
    failed = not _slack_live_check(settings) or failed
    return 1 if failed else 0


def _slack_live_check(settings: Any) -> bool:
    """Ask Slack whether the token works and the channel exists, and show the last
    delivery failure the bot recorded (`slack.delivery_failed`). False if Slack refused."""
    from backupbot.bot.composition import build_slack_client
    from backupbot.bot.slack.delivery import live_check
    from backupbot.settings import SlackCredentials

    client = build_slack_client(SlackCredentials.from_env(os.environ))
    ok = True
    if client is not None:
        ok, line = live_check(client, settings.slack.channel if settings.slack else None)
        print(line)
    try:
        from backupbot.storage.incidents import IncidentLog
        from backupbot.storage.state import create_state_engine

        if settings.state_file is not None and not settings.state_file.exists():
            return ok
        engine = create_state_engine(settings.state_url)
        try:
            recent = IncidentLog(engine).recent(500)
        finally:
            engine.dispose()
    except Exception:  # no state database yet, or not reachable: nothing recorded to show
        return ok
    failure = next((i for i in recent if i.action == "slack.delivery_failed"), None)
    if failure is not None:
        d = failure.details
        print(
            f"last Slack delivery failure the bot recorded: {humanize.utc(failure.at)}, "
            f"{d.get('channel')}: {d.get('error')}"
        )
    return ok


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


def _worker(services: Services, host: str, port: int) -> int:
    """Run queued jobs from the shared queue until SIGTERM or SIGINT, taking over work a
    dead process left; `--port` serves /healthz."""
    from backupbot.bot.runtime.http_server import HttpServer
    from backupbot.bot.slack.app import wsgi_app

    if services.settings.state_url.startswith("sqlite"):
        raise UsageError(
            "backupbot worker shares a queue in a PostgreSQL state database; with SQLite "
            "state (one host), `backupbot serve` runs the jobs itself."
        )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    services.take_over_abandoned()
    services.start_worker(services.slack_client)
    sweeper = Sweeper([services.take_over_abandoned], interval=SWEEP_SECONDS)
    sweeper.start()
    http = HttpServer(wsgi_app(None), host, port).start() if port else None
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


def _serve(services: Services, host: str, port: int) -> int:
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
    flow = RestoreFlow(services, build_web_client(services))
    sweeper = Sweeper(
        [services.take_over_abandoned, flow.expire_due, flow.announce_pending],
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
        http = HttpServer(wsgi_app(None), host, port).start()
        log.info("connected to Slack in Socket Mode; health check on port %d", port)
    else:
        http = HttpServer(wsgi_app(app), host, port).start()
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


if __name__ == "__main__":
    sys.exit(main())
