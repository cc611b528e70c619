"""Sentences as facts: plain wording with typed slots that each front end renders.

Commands never write markup. A sentence a command produces is a `Phrase`: literal text
and typed facts, built with `say("A backup of {db} is running, started by {who}.",
db=Name("app"), who=Actor("U0ALICE"))`. Front ends render the facts their own way:

- `bot/slack/kit.py`: names as code spans, actors as mentions, commands as the slash
  command, message links as links; every piece of text escaped, so user or server text
  can never become a mention or a link.
- `bot/cli/render/`: plain text; commands as the `backupbot ...` command line.

`str(phrase)` is the plain rendering: what logs and incident records store. A plain `str`
fact is text from a user or a server (a reason, an error message): shown as is, escaped.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Name:
    """An identifier the user may type back: a database, table, label, backup id, option."""

    value: str


@dataclass(frozen=True)
class Actor:
    """Who did or may do something: a Slack user id (`U0ALICE`), a user-group id
    (`S0DBA`, who may approve), `cli:alice`, `scheduler`, `system`."""

    id: str


@dataclass(frozen=True)
class Channel:
    """A Slack channel by id (`C0BACKUPS`): a channel link in Slack, `#C0BACKUPS` elsewhere."""

    id: str


@dataclass(frozen=True)
class Command:
    """A bot command to run next, as words after the command name: `("now", "app")` is
    `/backup now app` in Slack and `backupbot backup now app` in a terminal."""

    words: tuple[str, ...]

    def __init__(self, *words: str) -> None:
        object.__setattr__(self, "words", tuple(words))


@dataclass(frozen=True)
class MessageLink:
    """A Slack message (channel, ts) and the words to link; `url` when it is known."""

    text: str
    channel: str
    ts: str
    url: str | None = None


@dataclass(frozen=True)
class Literal:
    """The phrase's own wording (a template's text, or a message built in code)."""

    text: str


Part = Literal | str | Name | Actor | Channel | Command | MessageLink


@dataclass(frozen=True)
class Phrase:
    """A sequence of literal wording and facts. Concatenate with `+`; `str()` is plain."""

    parts: tuple[Part, ...] = ()

    def __str__(self) -> str:
        return "".join(plain(p) for p in self.parts)

    def __add__(self, other: Phrase | str) -> Phrase:
        return Phrase(self.parts + as_phrase(other).parts)

    def __radd__(self, other: str) -> Phrase:
        return Phrase(as_phrase(other).parts + self.parts)

    def __bool__(self) -> bool:
        return any(plain(p) for p in self.parts)


def say(template: str, **facts: object) -> Phrase:
    """A phrase from a template: `{name}` slots take the keyword facts; the template's own
    text is literal wording. Ints and floats become text; a `Phrase` fact is spliced in."""
    parts: list[Part] = []
    for literal, field, spec, _conv in string.Formatter().parse(template):
        if literal:
            parts.append(Literal(literal))
        if field is None:
            continue
        value = facts[field]
        if isinstance(value, Phrase):
            parts.extend(value.parts)
        elif isinstance(value, Name | Actor | Channel | Command | MessageLink | str):
            parts.append(value)
        elif isinstance(value, int | float):
            parts.append(Literal(format(value, spec or "")))
        else:
            raise TypeError(f"fact {field!r} has unsupported type {type(value).__name__}")
    return Phrase(tuple(parts))


def as_phrase(value: Phrase | str) -> Phrase:
    """A phrase as is; a plain string as wording (a message built in code, or an error
    text that carries server output: rendering escapes it either way)."""
    return value if isinstance(value, Phrase) else Phrase((Literal(value),) if value else ())


def join(items: Iterable[Phrase | str], sep: str = ", ") -> Phrase:
    """`items` joined by the literal `sep`."""
    out = Phrase()
    for i, item in enumerate(items):
        out = out + (Phrase((Literal(sep),)) if i else Phrase()) + as_phrase(item)
    return out


def names(values: Iterable[str], sep: str = ", ") -> Phrase:
    """Identifiers joined: `app, shop`."""
    return join((Phrase((Name(v),)) for v in values), sep)


def plain(part: Part) -> str:
    """One part as plain text; commands in their Slack form (`/backup now app`), which is
    what a person in the channel reads in a record. The CLI renders its own form."""
    if isinstance(part, Literal):
        return part.text
    if isinstance(part, str):
        return part
    if isinstance(part, Name):
        return part.value
    if isinstance(part, Actor):
        return part.id
    if isinstance(part, Channel):
        return "#" + part.id
    if isinstance(part, Command):
        return "/backup " + " ".join(part.words)
    return part.text


def to_json(phrase: Phrase) -> list[list[str]]:
    """The phrase as JSON-safe lists (`[kind, ...values]`), for phrases kept in the state
    database (a checklist's evidence)."""
    out: list[list[str]] = []
    for p in phrase.parts:
        if isinstance(p, Literal):
            out.append(["t", p.text])
        elif isinstance(p, Name):
            out.append(["n", p.value])
        elif isinstance(p, Actor):
            out.append(["a", p.id])
        elif isinstance(p, Channel):
            out.append(["h", p.id])
        elif isinstance(p, Command):
            out.append(["c", *p.words])
        elif isinstance(p, MessageLink):
            out.append(["l", p.text, p.channel, p.ts, p.url or ""])
        else:
            out.append(["x", p])
    return out


def dumps(phrase: Phrase | str) -> str:
    """A phrase as text for a string column (an alert's summary): its JSON form."""
    return json.dumps(to_json(as_phrase(phrase)))


def loads(text: str) -> Phrase:
    """The inverse of `dumps`; text that is not a stored phrase (a row written before
    phrases were stored) is shown as is."""
    if text.startswith("[["):
        try:
            return from_json(json.loads(text))
        except (ValueError, TypeError, IndexError):
            pass
    return Phrase((text,)) if text else Phrase()


def from_json(data: object) -> Phrase:
    """The inverse of `to_json`. A plain string (a row written before phrases were stored)
    becomes text, shown as is."""
    if isinstance(data, str):
        return Phrase((data,))
    parts: list[Part] = []
    for item in data if isinstance(data, list) else []:
        kind, *values = [str(v) for v in item]
        if kind == "t":
            parts.append(Literal(values[0]))
        elif kind == "n":
            parts.append(Name(values[0]))
        elif kind == "a":
            parts.append(Actor(values[0]))
        elif kind == "h":
            parts.append(Channel(values[0]))
        elif kind == "c":
            parts.append(Command(*values))
        elif kind == "l":
            text, channel, ts, url = values
            parts.append(MessageLink(text, channel, ts, url or None))
        else:
            parts.append(values[0] if values else "")
    return Phrase(tuple(parts))
