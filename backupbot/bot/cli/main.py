"""The backupbot command line: the same operations as Slack, for CI/CD and for when
Slack is down. Actions are recorded with the actor cli:<os user>.

Exit codes: 0 success, 1 the operation failed, 2 bad usage or configuration.

This module parses arguments and dispatches; `actions.py` runs the operations,
`render/` turns results and errors into plain text and JSON, `config_check.py` and
`serve.py` hold `config check`, `serve` and `worker`. Only the parser's modules (the
command registry) are imported at start; the rest is imported once a command runs, so
`backupbot --help` and a usage error answer without loading the database drivers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

from backupbot.commands.command_spec import Databases, Spec, build
from backupbot.commands.registry import Surface, specs
from backupbot.errors import BackupbotError, ConfigError, UsageError

if TYPE_CHECKING:
    from backupbot.bot.services import Services
    from backupbot.clock import Clock
    from backupbot.settings import Settings
    from backupbot.storage.incidents import IncidentLog

__all__ = ["main"]

JSON_HELP = "print the result as JSON on stdout (human text stays on stderr)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="backupbot", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="config file (default: $BACKUPBOT_CONFIG or ./backupbot.yml)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, Subparsers] = {}
    for spec in specs(Surface.CLI):
        _command_parser(_parent(sub, groups, spec.cli[:-1]), spec)
    _process_parsers(sub)
    return p


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
GROUP_HELP = {
    "backup": "Take a backup.",
    "restore": "Restore a backup.",
    "report": "Reports for auditors.",
}


def _parent(sub: Subparsers, groups: dict[str, Subparsers], words: tuple[str, ...]) -> Subparsers:
    """The subparsers a command's last word goes in: `backupbot` itself, or a group."""
    if not words:
        return sub
    [word] = words
    if word not in groups:
        groups[word] = sub.add_parser(word, help=GROUP_HELP[word]).add_subparsers(
            dest=f"{word}_command", required=True
        )
    return groups[word]


def _command_parser(parent: Subparsers, spec: Spec) -> None:
    """argparse for one registry command; `build` checks what argparse does not."""
    p = parent.add_parser(
        spec.cli[-1],
        help=spec.summary.replace("%", "%%"),
        description=spec.help.replace("%", "%%"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(spec=spec)
    for name, arg in spec.args(Surface.CLI):
        flag = arg.flag_on(Surface.CLI)
        metavar = arg.metavar if arg.metavar.lower() != arg.metavar else arg.metavar.upper()
        if arg.kind == "database":
            required = arg.databases is Databases.REQUIRED
            help_text = DATABASE_HELP[arg.databases]
            p.add_argument(
                name, nargs=None if required else "?", metavar="DATABASE", help=help_text
            )
        elif arg.kind == "switch":
            p.add_argument(str(flag), dest=name, action="store_true", help=arg.help)
        elif flag is None and arg.rest:
            p.add_argument(name, nargs="*", action=_Joined, metavar=metavar, help=arg.help)
        elif flag is None and arg.choices:
            p.add_argument(name, nargs="?", choices=arg.choices, help=arg.help)
        elif flag is None:
            p.add_argument(name, nargs="?", metavar=metavar, help=arg.help)
        else:
            p.add_argument(flag, dest=name, metavar=metavar, help=arg.help)
    p.add_argument("--json", action="store_true", help=JSON_HELP)


class _Joined(argparse.Action):
    """Free text given as one or more words (quoted or not): joined by spaces."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        setattr(namespace, self.dest, " ".join(values or []))


DATABASE_HELP = {
    Databases.ONE: "the database (may be left out when only one is configured)",
    Databases.REQUIRED: "the database",
    Databases.ALL: "one database (default: every database)",
}


def _process_parsers(sub: Subparsers) -> None:
    worker_p = sub.add_parser(
        "worker",
        help="Run queued backups, restores, drills and retention runs (PostgreSQL state); "
        "any number may run.",
    )
    worker_p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "0")))
    worker_p.add_argument("--host", default="0.0.0.0")
    serve_p = sub.add_parser("serve", help="Run the Slack bot (Socket Mode or HTTP).")
    serve_p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    serve_p.add_argument("--host", default="0.0.0.0")

    config = sub.add_parser("config", help="Configuration tools.").add_subparsers(
        dest="config_command", required=True, metavar="check"
    )
    check = config.add_parser("check", help="Validate the config file and environment.")
    check.add_argument(
        "--live",
        action="store_true",
        help="also connect to every database, the store and each provider API",
    )


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(words)
    from backupbot.bot.cli.render import render
    from backupbot.bot.logging_setup import configure_logging
    from backupbot.bot.status_composition import load
    from backupbot.storage.pgconn import passfile_dir

    configure_logging("WARNING", "text")
    try:
        settings = load(args.config)
        passfile_dir()  # removes the passfiles of killed backupbot processes, at start
        if args.command in ("serve", "worker"):
            configure_logging(settings.logging.level, settings.logging.format)
        if args.command == "config":
            from backupbot.bot.cli.config_check import config_check

            return config_check(settings, args.live)
        if args.command == "status":  # builds only what status reads
            from backupbot.bot.cli.status_cmd import status
            from backupbot.bot.status_composition import build_status_services

            return _run(build_status_services(settings), args, words, status)
        from backupbot.bot.composition import build_services

        services = build_services(settings)
        try:
            return _dispatch(services, args, words)
        finally:
            services.close()
    except (ConfigError, UsageError) as exc:
        print(f"error: {render(exc.phrase)}", file=sys.stderr)
        return 2
    except BackupbotError as exc:
        print(f"error: {render(exc.phrase)}", file=sys.stderr)
        return 1


def _dispatch(services: Services, args: argparse.Namespace, words: list[str]) -> int:
    from backupbot.bot.cli import actions
    from backupbot.bot.cli.serve import serve, worker

    if args.command == "serve":
        return serve(services, args.host, args.port)
    if args.command == "worker":
        return worker(services, args.host, args.port)
    return _run(services, args, words, actions.HANDLERS[args.spec.request])


class _Built(Protocol):
    """`Services`, or `StatusServices` (what `status` alone builds)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def incidents(self) -> IncidentLog: ...


S = TypeVar("S", bound=_Built)


def _run(
    services: S, args: argparse.Namespace, words: list[str], handler: Callable[[S, Any, bool], int]
) -> int:
    """Run the command; a refusal is recorded (see `commands/refusals.py`) and raised."""
    from backupbot.bot.cli.common import cli_actor
    from backupbot.commands.refusals import record_unrecorded

    spec: Spec = args.spec
    values = {name: getattr(args, name) for name, _ in spec.args(Surface.CLI)}
    try:
        request = build(spec, values, services.settings.database_names, Surface.CLI)
        return handler(services, request, args.json)
    except BackupbotError as exc:
        given = " ".join(words[words.index(spec.cli[0]) :])  # without --config FILE
        now = services.clock.now()
        record_unrecorded(services.incidents, exc, at=now, actor=cli_actor(), command=given)
        raise


if __name__ == "__main__":
    sys.exit(main())
