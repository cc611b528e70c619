"""A `Phrase` as terminal text, and bot commands as the command line that does the same."""

from __future__ import annotations

import shlex

from backupbot.phrases import Actor, Channel, Command, Literal, MessageLink, Name, Phrase

PROG = "backupbot"

# Slack subcommand -> the CLI words that do the same; the arguments follow as they are.
_CLI_FORMS: dict[str, tuple[str, ...]] = {
    "now": ("backup", "now"),
    "restore": ("restore", "request"),
    "drill": ("drill",),
    "status": ("status",),
    "retention": ("retention",),
    "migrations": ("migrations",),
    "help": ("--help",),
}


def command_line(cmd: Command) -> str:
    """The `backupbot ...` command line for a bot command (`Command("now", "app")` is
    `backupbot backup now app`), shell-quoted; a command the CLI lacks keeps its Slack
    form (`/backup ...`)."""
    if not cmd.words:
        return PROG
    name, args = cmd.words[0], list(cmd.words[1:])
    if name == "log":
        words = ["log", *(["--limit", *args] if args else [])]
    elif name in _CLI_FORMS:
        words = [*_CLI_FORMS[name], *args]
    else:
        return "/backup " + " ".join(cmd.words)
    return shlex.join([PROG, *words])


def cli_command(*words: str) -> str:
    """A CLI command line from its words after `backupbot`: `cli_command("restore",
    "request")` is `backupbot restore request`."""
    return shlex.join([PROG, *words])


def render(phrase: Phrase | str) -> str:
    """Plain text: names as they are, actors as their id, commands as CLI command lines,
    message links as their words (with the URL when known); text as it is."""
    if isinstance(phrase, str):
        return phrase
    out: list[str] = []
    for part in phrase.parts:
        if isinstance(part, Literal):
            out.append(part.text)
        elif isinstance(part, Name):
            out.append(part.value)
        elif isinstance(part, Actor):
            out.append(part.id)
        elif isinstance(part, Channel):
            out.append("#" + part.id)
        elif isinstance(part, Command):
            out.append(command_line(part))
        elif isinstance(part, MessageLink):
            out.append(f"{part.text} ({part.url})" if part.url else part.text)
        else:
            out.append(part)
    return "".join(out)
