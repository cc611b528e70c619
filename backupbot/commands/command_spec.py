"""How a command is declared: `@command` on a dataclass, and `Spec`, what front ends read.

A command is a frozen dataclass decorated with `@command`: its docstring is its help
text, its fields are its arguments (declared with `database_arg`, `positional`, `option`
and `switch`), and the decorator names it on each surface (`/backup now` in Slack,
`backupbot backup now` in a terminal), the role it needs (the hook access rules plug
into) and whether it is slow (answered after an acknowledgement). `build` turns parsed
values into the request with the same checks on both surfaces. The commands are
declared in `registry.py`.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from backupbot.errors import UnknownDatabase, UsageError
from backupbot.phrases import Command, Name, Phrase, names, say


class Surface(enum.Enum):
    SLACK = "slack"
    CLI = "cli"


BOTH = frozenset(Surface)
CLI_ONLY = frozenset({Surface.CLI})
SLACK_ONLY = frozenset({Surface.SLACK})


class Role(enum.IntEnum):
    """What a command needs of the person running it, lowest first."""

    VIEWER = 1
    OPERATOR = 2
    APPROVER = 3
    ADMIN = 4


class Databases(enum.Enum):
    """How a command takes its database."""

    ONE = "one"  # one database; may be left out when only one is configured
    REQUIRED = "required"  # one database, always named
    ALL = "all"  # one database, or every database when none is named


ArgKind = Literal["database", "text", "int", "switch", "word"]


@dataclass(frozen=True)
class Arg:
    """One argument of a command. `flag` is None for a positional argument."""

    kind: ArgKind
    flag: str | None = None
    metavar: str = ""
    help: str = ""
    surfaces: frozenset[Surface] = BOTH
    databases: Databases = Databases.ONE
    bounds: tuple[int, int] | None = None
    cli_flag: str | None = None  # a Slack positional taken as this option on the CLI
    cli_bounds: tuple[int, int] | None = None
    choices: tuple[str, ...] = ()
    role: Role | None = None  # using this argument needs this role
    excludes: str | None = None  # the field this one cannot be combined with
    rest: bool = False  # free text: the rest of the line (Slack), every word left (CLI)

    def flag_on(self, surface: Surface) -> str | None:
        return self.cli_flag if surface is Surface.CLI and self.cli_flag else self.flag

    def bounds_on(self, surface: Surface) -> tuple[int, int] | None:
        return self.cli_bounds if surface is Surface.CLI and self.cli_bounds else self.bounds


def database_arg(kind: Databases) -> Any:
    """The database the command acts on; `None` means every database (`Databases.ALL`)."""
    arg = Arg("database", metavar="db", databases=kind)
    if kind is Databases.ALL:
        return field(default=None, metadata={"arg": arg})
    return field(metadata={"arg": arg})


def positional(metavar: str, help: str, default: Any = None, **more: Any) -> Any:
    kind: ArgKind = "int" if isinstance(default, int) else "text"
    arg = Arg(kind, metavar=metavar, help=help, **more)
    return field(default=default, metadata={"arg": arg})


def option(flag: str, metavar: str, help: str, **more: Any) -> Any:
    return field(default=None, metadata={"arg": Arg("text", flag, metavar, help, **more)})


def switch(flag: str, help: str, **more: Any) -> Any:
    return field(default=False, metadata={"arg": Arg("switch", flag, help=help, **more)})


@dataclass(frozen=True)
class Spec:
    """A command as the front ends see it."""

    request: type[Any]
    slack: str | None  # the word after /backup, None when Slack does not offer it
    cli: tuple[str, ...]  # the words after `backupbot`, () when the CLI does not offer it
    role: Role
    slow: bool  # reads the state or a database: Slack acknowledges first, answers after
    too_many: str  # the answer to too many positional arguments ({c}: the command, {n})

    @property
    def name(self) -> str:
        return self.slack or " ".join(self.cli)

    @property
    def help(self) -> str:
        return inspect.cleandoc(self.request.__doc__ or "")

    @property
    def summary(self) -> str:
        return " ".join(self.help.split("\n\n")[0].split())

    def offered_on(self, surface: Surface) -> bool:
        return bool(self.slack if surface is Surface.SLACK else self.cli)

    def args(self, surface: Surface) -> Iterator[tuple[str, Arg]]:
        for f in dataclasses.fields(self.request):
            arg: Arg = f.metadata["arg"]
            if surface in arg.surfaces:
                yield f.name, arg

    def positionals(self, surface: Surface) -> list[tuple[str, Arg]]:
        return [(n, a) for n, a in self.args(surface) if a.flag_on(surface) is None]

    def options(self, surface: Surface) -> dict[str, tuple[str, Arg]]:
        found: dict[str, tuple[str, Arg]] = {}
        for name, arg in self.args(surface):
            flag = arg.flag_on(surface)
            if flag is not None:
                found[flag] = (name, arg)
        return found

    def usage(self) -> str:
        """The Slack form: `/backup restore DB [latest|BACKUP_ID] [--into TARGET] ...`."""
        words = [f"/backup {self.slack}"]
        for _, arg in self.args(Surface.SLACK):
            if arg.kind == "database":
                words.append("DB" if arg.databases is Databases.REQUIRED else "[db]")
            elif arg.flag is None and arg.rest:
                words.append(arg.metavar)
            elif arg.flag is None:
                words.append(f"[{arg.metavar}]")
            elif arg.kind == "switch":
                words.append(f"[{arg.flag}]")
            else:
                words.append(f"[{arg.flag} {arg.metavar}]")
        return " ".join(words)

    def required_role(self, request: object) -> Role:
        """The role this request needs: the command's, or more for some arguments."""
        needed = [self.role]
        for f in dataclasses.fields(self.request):
            arg: Arg = f.metadata["arg"]
            if arg.role is not None and getattr(request, f.name):
                needed.append(arg.role)
        return max(needed)


REGISTRY: dict[type[Any], Spec] = {}
T = TypeVar("T")


def command(
    slack: str | None = None,
    cli: tuple[str, ...] = (),
    *,
    role: Role,
    slow: bool = False,
    too_many: str = "",
) -> Callable[[type[T]], type[T]]:
    """Declare a request type as a command (see the module docstring)."""

    def declare(cls: type[T]) -> type[T]:
        request = dataclass(frozen=True)(cls)
        spec = Spec(request, slack, cli, role, slow, too_many or _too_many(request))
        REGISTRY[request] = spec
        return request

    return declare


def _too_many(request: type[Any]) -> str:
    kinds = [f.metadata["arg"].kind for f in dataclasses.fields(request)]
    if not kinds:
        return "{c} takes no arguments."
    return "{c} takes one database name, got {n}."


def spec_of(request: object) -> Spec:
    return REGISTRY[type(request)]


def specs(surface: Surface) -> list[Spec]:
    return [s for s in REGISTRY.values() if s.offered_on(surface)]


def slack_spec(word: str) -> Spec | None:
    return next((s for s in REGISTRY.values() if s.slack == word), None)


def usage_of(name: str) -> str:
    """The Slack usage of the command named `name`; of every command for `ALL_COMMANDS`."""
    found = [s for s in specs(Surface.SLACK) if name in (s.name, UsageError.ALL_COMMANDS)]
    return "\n".join(s.usage() for s in found)


def resolve_database(given: str | None, databases: Sequence[str], command: str) -> str:
    """The named database, or the only one; errors list what is configured."""
    if given is None:
        if len(databases) == 1:
            return databases[0]
        raise UsageError(say("Which database? Configured: {dbs}.", dbs=names(databases)), command)
    if given in databases:
        return given
    raise UnknownDatabase(
        say(
            "There is no configured database named {given}.{hint} Configured: {dbs}.",
            given=Name(given),
            hint=did_you_mean(given, databases),
            dbs=names(databases),
        ),
        command,
    )


def did_you_mean(given: str, choices: Sequence[str]) -> Phrase:
    close = difflib.get_close_matches(given, list(choices), n=1)
    return say(" Did you mean {c}?", c=Name(close[0])) if close else Phrase()


def build(spec: Spec, values: dict[str, Any], databases: Sequence[str], surface: Surface) -> Any:
    """The request from parsed values: databases resolved, numbers and exclusions checked.
    Both front ends' parsers end here, so the rules hold the same in Slack and the CLI."""
    out = dict(values)
    for name, arg in spec.args(surface):
        value = out.get(name)
        if arg.kind == "database":
            out[name] = _database(spec, arg, value, databases)
        elif arg.kind == "int" and value is not None:
            out[name] = _number(spec, arg, value, surface)
        if arg.excludes and value and out.get(arg.excludes):
            other = dict(spec.args(surface))[arg.excludes]
            raise UsageError(
                f"Choose one of {_form(arg, surface)} and {_form(other, surface)}.", spec.name
            )
    return spec.request(**{k: v for k, v in out.items() if v is not None})


def _form(arg: Arg, surface: Surface) -> str:
    flag = arg.flag_on(surface) or arg.metavar
    return f"{flag} {arg.metavar}" if arg.kind == "text" and arg.flag else flag


def _database(spec: Spec, arg: Arg, given: str | None, databases: Sequence[str]) -> str | None:
    if given is None and arg.databases is Databases.ALL:
        return None
    if given is None and arg.databases is Databases.REQUIRED:
        raise UsageError(
            say(
                "Which database? Configured: {dbs}. Name it first, e.g. {example}.",
                dbs=names(databases),
                example=Command(*(spec.slack or " ".join(spec.cli)).split(), databases[0]),
            ),
            spec.name,
        )
    return resolve_database(given, databases, spec.name)


def _number(spec: Spec, arg: Arg, value: object, surface: Surface) -> int:
    lo, hi = arg.bounds_on(surface) or (1, 2**31)
    text = str(value)
    if not (text.isascii() and text.isdigit()) or not lo <= int(text) <= hi:
        raise UsageError(
            f"{arg.flag_on(surface) or arg.metavar} must be a number from {lo} to {hi}.",
            spec.name,
        )
    return int(text)
