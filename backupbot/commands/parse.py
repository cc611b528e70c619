"""The Slack grammar: the text after `/backup` into a request from `registry.py`.

Words are split like a shell (curly quotes and dashes that phones type count as plain
ones); the first names the command, options are `--flag VALUE`, `--flag=VALUE` or a
switch, and the rest fill the command's positional arguments in order. A command whose
last argument is free text (`/backup note app restore It's done`) is not split: its first
words are taken one by one and the rest of the line is kept as typed. Every mistake is a
`UsageError` naming the problem and the command, whose usage the answer shows.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from backupbot.commands.command_spec import Arg, Spec, build, did_you_mean, slack_spec
from backupbot.commands.registry import REGISTRY, Help, Surface
from backupbot.errors import UsageError
from backupbot.phrases import Name, say

SLACK = Surface.SLACK


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
            say(
                "A quote is not closed. Quote labels like {example}.",
                example='--label "pre deploy"',
            ),
            "now",
        ) from None


def parse_command(text: str, databases: Sequence[str]) -> Any:
    """Parse the text after `/backup` into a request. Raises `UsageError`."""
    head, rest = _first_word(text)
    spec = slack_spec(head.lower())
    if spec is not None and _takes_rest(spec):
        return _parse_rest(spec, rest, databases)
    words = _split(text.strip())
    if not words:
        return Help()
    if [w.lower() for w in words[:2]] == ["drill", "postpone"]:  # the runbook's wording
        words = ["postpone", *words[2:]]
    spec = slack_spec(words[0].lower())
    if spec is None:
        raise UsageError(
            say(
                "{word} is not a /backup command.{hint}",
                word=Name(words[0]),
                hint=did_you_mean(
                    words[0].lower(), [s.slack for s in REGISTRY.values() if s.slack]
                ),
            ),
            UsageError.ALL_COMMANDS,
        )
    values, given = _read(spec, words[1:])
    positionals = spec.positionals(SLACK)
    if len(given) > len(positionals):
        raise UsageError(say(spec.too_many, c=Name(spec.name), n=len(given)), spec.name)
    for (name, _), value in zip(positionals, given, strict=False):
        values[name] = value
    return build(spec, values, databases, SLACK)


def _first_word(text: str) -> tuple[str, str]:
    """The first word of `text` and the rest of it, as typed."""
    parts = text.strip().split(None, 1)
    return (parts[0], parts[1]) if len(parts) == 2 else ((parts or [""])[0], "")


def _takes_rest(spec: Spec) -> bool:
    return any(arg.rest for _, arg in spec.positionals(SLACK))


def _parse_rest(spec: Spec, text: str, databases: Sequence[str]) -> Any:
    """A command whose last argument is free text (`/backup note app restore It's done`):
    the words before it are taken one by one (an optional word with choices only when it
    is one of them), the rest of the line is the text as typed, quotes and all."""
    values: dict[str, Any] = {}
    for name, arg in spec.positionals(SLACK):
        if arg.rest:
            values[name] = text.strip()
            break
        word, after = _first_word(text)
        if arg.choices and word.lower() not in arg.choices:
            continue
        if word:
            values[name] = word.lower() if arg.choices else word
            text = after
    return build(spec, values, databases, SLACK)


def _read(spec: Spec, args: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Options by field name, and the positional words in order."""
    options = spec.options(SLACK)
    values: dict[str, Any] = {}
    given: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        flag = word.split("=", 1)[0]
        if flag in options:
            name, arg = options[flag]
            values[name], i = _value(spec, arg, args, i)
        elif word.startswith("-") and not word[1:].isdigit():
            hint = did_you_mean(word, list(options))
            raise UsageError(say("Unknown option {o}.{hint}", o=Name(word), hint=hint), spec.name)
        else:
            given.append(word)
            i += 1
    return values, given


def _value(spec: Spec, arg: Arg, args: list[str], i: int) -> tuple[Any, int]:
    """The value of the option at args[i] and the index after it."""
    word, flag = args[i], str(arg.flag)
    if arg.kind == "switch":
        if word != flag:
            raise UsageError(say("{o} takes no value.", o=Name(flag)), spec.name)
        return True, i + 1
    if word.startswith(flag + "="):
        return word.split("=", 1)[1], i + 1
    if i + 1 < len(args) and not args[i + 1].startswith("--"):
        return args[i + 1], i + 2
    raise UsageError(say("{o} needs a value.", o=Name(flag)), spec.name)
