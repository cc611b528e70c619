"""The backupbot command line: the same operations as Slack, for CI/CD and for when
Slack is down. Actions are recorded with the actor cli:<os user>.

Exit codes: 0 success, 1 the operation failed, 2 bad usage or configuration.

This module parses arguments and dispatches; `actions.py` runs the operations,
`render/` turns results and errors into plain text and JSON, `config_check.py` and
`serve.py` hold `config check`, `serve` and `worker`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TypeAlias

from backupbot.bot.cli import actions
from backupbot.bot.cli.actions import cli_actor
from backupbot.bot.cli.config_check import config_check
from backupbot.bot.cli.render import render
from backupbot.bot.cli.serve import serve, worker
from backupbot.bot.composition import Services, build_services, load
from backupbot.bot.logging_setup import configure_logging
from backupbot.commands.parse import MAX_LOG
from backupbot.errors import BackupbotError, ConfigError, UsageError

__all__ = ["cli_actor", "main"]

JSON_HELP = "print the result as JSON on stdout (human text stays on stderr)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="backupbot", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="config file (default: $BACKUPBOT_CONFIG or ./backupbot.yml)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _backup_parser(sub)
    _restore_parser(sub)
    _report_parsers(sub)
    _process_parsers(sub)
    return p


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _backup_parser(sub: Subparsers) -> None:
    backup = sub.add_parser("backup", help="take a backup").add_subparsers(
        dest="backup_command", required=True, metavar="now"
    )
    now = backup.add_parser("now", help="take a verified backup; prints its id")
    now.add_argument("database")
    now.add_argument("--label", help="e.g. pre-deploy")
    now.add_argument("--json", action="store_true", help=JSON_HELP)

    drill = sub.add_parser(
        "drill",
        help="restore drill: restore the latest verified backup into a scratch database, "
        "verify it, time it against the RTO, drop it (exit 0 pass, 1 fail)",
    )
    drill.add_argument("database")
    drill.add_argument("--json", action="store_true", help=JSON_HELP)


def _restore_parser(sub: Subparsers) -> None:
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
        r.add_argument("--json", action="store_true", help=JSON_HELP)
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


def _report_parsers(sub: Subparsers) -> None:
    retention = sub.add_parser(
        "retention",
        help="show what retention would delete and why (dry run); --apply deletes it now",
    )
    retention.add_argument("database", nargs="?", help="one database (default: all)")
    retention.add_argument("--apply", action="store_true", help="delete now, and record it")
    retention.add_argument("--json", action="store_true", help=JSON_HELP)

    status = sub.add_parser("status", help="where each database's backups stand")
    status.add_argument("database", nargs="?")
    status.add_argument("--json", action="store_true", help=JSON_HELP)

    log_p = sub.add_parser(
        "log", help="the incident log, newest first; 'log verify' checks its hash chain"
    )
    log_p.add_argument("check", nargs="?", choices=["verify"], help="check the hash chain")
    log_p.add_argument("--limit", type=int, default=20)
    log_p.add_argument("--json", action="store_true", help=JSON_HELP)


def _process_parsers(sub: Subparsers) -> None:
    worker_p = sub.add_parser(
        "worker",
        help="run queued backups, restores, drills and retention runs (PostgreSQL state); "
        "any number may run",
    )
    worker_p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "0")))
    worker_p.add_argument("--host", default="0.0.0.0")
    serve_p = sub.add_parser("serve", help="run the Slack bot (Socket Mode or HTTP)")
    serve_p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    serve_p.add_argument("--host", default="0.0.0.0")

    config = sub.add_parser("config", help="configuration tools").add_subparsers(
        dest="config_command", required=True, metavar="check"
    )
    check = config.add_parser("check", help="validate the config file and environment")
    check.add_argument(
        "--live", action="store_true", help="also connect to every database and the store"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging("WARNING", "text")
    try:
        settings = load(args.config)
        if args.command in ("serve", "worker"):
            configure_logging(settings.logging.level, settings.logging.format)
        if args.command == "config":
            return config_check(settings, args.live)
        services = build_services(settings)
        try:
            return _dispatch(services, args)
        finally:
            services.close()
    except (ConfigError, UsageError) as exc:
        print(f"error: {render(exc.phrase)}", file=sys.stderr)
        return 2
    except BackupbotError as exc:
        print(f"error: {render(exc.phrase)}", file=sys.stderr)
        return 1


def _dispatch(services: Services, args: argparse.Namespace) -> int:
    if args.command == "backup":
        return actions.backup_now(services, args.database, args.label, args.json)
    if args.command == "status":
        return actions.status(services, args.database, args.json)
    if args.command == "retention":
        return actions.retention(services, args.database, args.apply, args.json)
    if args.command == "log" and args.check == "verify":
        return actions.log_verify(services, args.json)
    if args.command == "log":
        if not 1 <= args.limit <= 10 * MAX_LOG:
            raise UsageError(f"--limit must be between 1 and {10 * MAX_LOG}.")
        return actions.log(services, args.limit, args.json)
    if args.command == "serve":
        return serve(services, args.host, args.port)
    if args.command == "worker":
        return worker(services, args.host, args.port)
    if args.command == "restore" and args.restore_command == "request":
        return actions.restore_request(services, args)
    if args.command == "restore":
        return actions.restore_run(services, args)
    if args.command == "drill":
        return actions.drill(services, args.database, args.json)
    raise UsageError(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
