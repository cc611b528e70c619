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
        raise UsageError(f"Which database? Configured: {', '.join(databases)}.", usage)
    if given in databases:
        return given
    close = difflib.get_close_matches(given, databases, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownDatabase(
        f"There is no configured database named {given!r}.{hint} "
        f"Configured: {', '.join(databases)}.",
        usage,
    )


def parse_command(text: str, databases: Sequence[str]) -> ParsedCommand:
    """Parse the text after `/backup`. Raises `UsageError` naming the problem and usage."""
    words = _split(text.strip())
    if not words:
        return ParsedCommand("help")
    name, args = words[0].lower(), words[1:]
    if name not in SUBCOMMANDS:
        close = difflib.get_close_matches(name, list(SUBCOMMANDS), n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise UsageError(
            f"`{words[0]}` is not a /backup command.{hint}",
            "\n".join(s.usage for s in SUBCOMMANDS.values()),
        )
    usage = usage_of(name)
    if name == "help":
        if args:
            raise UsageError("`help` takes no arguments.", usage)
        return ParsedCommand("help")
    if name == "log":
        if len(args) > 1:
            raise UsageError("`log` takes at most one number.", usage)
        limit = 10
        if args:
            if not (args[0].isascii() and args[0].isdigit()) or not 1 <= int(args[0]) <= MAX_LOG:
                raise UsageError(f"n must be a number from 1 to {MAX_LOG}.", usage)
            limit = int(args[0])
        return ParsedCommand("log", limit=limit)

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
            raise UsageError(f"Unknown option `{arg}`.", usage)
        else:
            positional.append(arg)
        i += 1
    if len(positional) > 1:
        raise UsageError(f"`{name}` takes one database name, got {len(positional)}.", usage)
    if name == "status":
        db = resolve_database(positional[0], databases, usage) if positional else None
        return ParsedCommand("status", database=db)
    db = resolve_database(positional[0] if positional else None, databases, usage)
    return ParsedCommand("now", database=db, label=label)
