"""Parsing `/backup ...` text into a request: one grammar for Slack and for tests.

The table `SUBCOMMANDS` is the help text: each entry's usage and summary are what
`/backup help` shows and what an error message points to.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from backupbot.errors import UnknownDatabase, UsageError
from backupbot.phrases import Command, Name, Phrase, names, say


@dataclass(frozen=True)
class Subcommand:
    name: str
    usage: str
    summary: str


SUBCOMMANDS: dict[str, Subcommand] = {
    s.name: s
    for s in (
        Subcommand(
            "now",
            "/backup now [db] [--label TEXT]",
            "Take a verified backup now (e.g. before a risky deploy). Progress and the result "
            "appear in the channel.",
        ),
        Subcommand(
            "restore",
            "/backup restore DB [latest|BACKUP_ID] [--into TARGET] [--in-place] [--reason TEXT]",
            "Ask to restore a backup; a second person approves in the channel. Without "
            "--into it goes to a new database <db>_restored_<time>; --in-place overwrites "
            "the source after a safety backup.",
        ),
        Subcommand(
            "drill",
            "/backup drill [db]",
            "Run a restore drill now (every database when none is named): restore the latest "
            "verified backup into a scratch database, verify every table, time it against "
            "the RTO, drop it, post Pass/Fail.",
        ),
        Subcommand(
            "retention",
            "/backup retention [db]",
            "Show what the next retention run would delete and why (nothing is deleted).",
        ),
        Subcommand(
            "status",
            "/backup status [db]",
            "Last good backup, last failure, backups kept and anything worrying, per database.",
        ),
        Subcommand("log", "/backup log [n]", "The last n incident-log records (default 10)."),
        Subcommand("help", "/backup help", "This help."),
    )
}
MAX_LOG = 50


@dataclass(frozen=True)
class ParsedCommand:
    name: str
    database: str | None = None
    label: str | None = None
    limit: int | None = None
    backup_ref: str | None = None
    into: str | None = None
    in_place: bool = False
    reason: str | None = None


def usage_of(name: str) -> str:
    return SUBCOMMANDS[name].usage


def _split(text: str) -> list[str]:
    normalized = (
        text.replace("\u201c", '"')
        .replace("\u201d", '"')
        .replace("\u2018", "'")
        .replace("\u2019", "'")
        .replace("\u2014", "--")
        .replace("\u2013", "--")
    )
    try:
        return shlex.split(normalized)
    except ValueError:
        raise UsageError(
            "A quote is not closed.", 'Quote labels like --label "pre deploy".'
        ) from None


def resolve_database(given: str | None, databases: Sequence[str], usage: str) -> str:
    """The named database, or the only one; errors list what is configured."""
    if given is None:
        if len(databases) == 1:
            return databases[0]
        raise UsageError(say("Which database? Configured: {dbs}.", dbs=names(databases)), usage)
    if given in databases:
        return given
    raise UnknownDatabase(
        say(
            "There is no configured database named {given}.{hint} Configured: {dbs}.",
            given=Name(given),
            hint=_did_you_mean(given, databases),
            dbs=names(databases),
        ),
        usage,
    )


def _did_you_mean(given: str, choices: Sequence[str]) -> Phrase:
    close = difflib.get_close_matches(given, list(choices), n=1)
    return say(" Did you mean {c}?", c=Name(close[0])) if close else Phrase()


def parse_command(text: str, databases: Sequence[str]) -> ParsedCommand:
    """Parse the text after `/backup`. Raises `UsageError` naming the problem and usage."""
    words = _split(text.strip())
    if not words:
        return ParsedCommand("help")
    name, args = words[0].lower(), words[1:]
    if name not in SUBCOMMANDS:
        raise UsageError(
            say(
                "{word} is not a /backup command.{hint}",
                word=Name(words[0]),
                hint=_did_you_mean(name, list(SUBCOMMANDS)),
            ),
            "\n".join(s.usage for s in SUBCOMMANDS.values()),
        )
    usage = usage_of(name)
    if name == "help":
        if args:
            raise UsageError(say("{c} takes no arguments.", c=Name("help")), usage)
        return ParsedCommand("help")
    if name == "log":
        if len(args) > 1:
            raise UsageError(say("{c} takes at most one number.", c=Name("log")), usage)
        limit = 10
        if args:
            if not (args[0].isascii() and args[0].isdigit()) or not 1 <= int(args[0]) <= MAX_LOG:
                raise UsageError(f"n must be a number from 1 to {MAX_LOG}.", usage)
            limit = int(args[0])
        return ParsedCommand("log", limit=limit)

    if name == "restore":
        return _parse_restore(args, databases, usage)
    positional: list[str] = []
    label: str | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if name == "now" and (arg == "--label" or arg.startswith("--label=")):
            if arg.startswith("--label="):
                label = arg.split("=", 1)[1]
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                label = args[i + 1]
                i += 1
            else:
                raise UsageError("--label needs a value.", usage)
        elif arg.startswith("-"):
            raise UsageError(say("Unknown option {o}.", o=Name(arg)), usage)
        else:
            positional.append(arg)
        i += 1
    if len(positional) > 1:
        raise UsageError(
            say("{c} takes one database name, got {n}.", c=Name(name), n=len(positional)), usage
        )
    if name in ("status", "retention", "drill"):  # without a database: all of them
        db = resolve_database(positional[0], databases, usage) if positional else None
        return ParsedCommand(name, database=db)
    db = resolve_database(positional[0] if positional else None, databases, usage)
    return ParsedCommand("now", database=db, label=label)


def _option_value(args: list[str], i: int, option: str, usage: str) -> tuple[str, int]:
    """The value of `--option VALUE` or `--option=VALUE` at args[i]; the next index."""
    arg = args[i]
    if arg.startswith(option + "="):
        return arg.split("=", 1)[1], i + 1
    if i + 1 < len(args) and not args[i + 1].startswith("--"):
        return args[i + 1], i + 2
    raise UsageError(f"{option} needs a value.", usage)


def _parse_restore(args: list[str], databases: Sequence[str], usage: str) -> ParsedCommand:
    positional: list[str] = []
    into: str | None = None
    reason: str | None = None
    in_place = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--into" or arg.startswith("--into="):
            into, i = _option_value(args, i, "--into", usage)
        elif arg == "--reason" or arg.startswith("--reason="):
            reason, i = _option_value(args, i, "--reason", usage)
        elif arg == "--in-place":
            in_place, i = True, i + 1
        elif arg.startswith("-"):
            hint = _did_you_mean(arg, ["--into", "--in-place", "--reason"])
            raise UsageError(say("Unknown option {o}.{hint}", o=Name(arg), hint=hint), usage)
        else:
            positional.append(arg)
            i += 1
    if not positional:
        raise UsageError(
            say(
                "Which database? Configured: {dbs}. Name it first, e.g. {example}.",
                dbs=names(databases),
                example=Command("restore", databases[0], "latest"),
            ),
            usage,
        )
    if len(positional) > 2:
        raise UsageError(
            say(
                "{c} takes a database and a backup ({latest} or an id); put the reason in "
                'quotes: --reason "why".',
                c=Name("restore"),
                latest=Name("latest"),
            ),
            usage,
        )
    if in_place and into is not None:
        raise UsageError("Choose one of --into TARGET and --in-place.", usage)
    db = resolve_database(positional[0], databases, usage)
    ref = positional[1] if len(positional) > 1 else "latest"
    return ParsedCommand(
        "restore", database=db, backup_ref=ref, into=into, in_place=in_place, reason=reason
    )
