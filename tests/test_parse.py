"""`/backup ...` text to a request: the grammar shared by Slack and the CLI."""

from __future__ import annotations

from typing import Any

import pytest

from backupbot.commands.parse import SUBCOMMANDS, ParsedCommand, parse_command
from backupbot.errors import UnknownDatabase, UsageError

ONE = ["app"]
TWO = ["app", "billing"]


@pytest.mark.parametrize(
    ("text", "databases", "expected"),
    [
        ("", ONE, ParsedCommand("help")),
        ("   ", ONE, ParsedCommand("help")),
        ("help", ONE, ParsedCommand("help")),
        ("HELP", TWO, ParsedCommand("help")),
        ("now", ONE, ParsedCommand("now", database="app")),
        ("  now  ", ONE, ParsedCommand("now", database="app")),
        ("Now billing", TWO, ParsedCommand("now", database="billing")),
        ("now app", ONE, ParsedCommand("now", database="app")),
        (
            "now app --label pre-deploy",
            TWO,
            ParsedCommand("now", database="app", label="pre-deploy"),
        ),
        (
            "now --label pre-deploy app",
            TWO,
            ParsedCommand("now", database="app", label="pre-deploy"),
        ),
        ("now --label=x", ONE, ParsedCommand("now", database="app", label="x")),
        ("now --label=a=b", ONE, ParsedCommand("now", database="app", label="a=b")),
        ('now --label "two words"', ONE, ParsedCommand("now", database="app", label="two words")),
        ("now --label 'two words'", ONE, ParsedCommand("now", database="app", label="two words")),
        (
            "now --label \u201ctwo words\u201d",
            ONE,
            ParsedCommand("now", database="app", label="two words"),
        ),
        (
            "now --label \u2018two words\u2019",
            ONE,
            ParsedCommand("now", database="app", label="two words"),
        ),
        # Slack turns `--` into an em dash on some clients.
        ("now \u2014label x", ONE, ParsedCommand("now", database="app", label="x")),
        ("status", TWO, ParsedCommand("status", database=None)),
        ("status", ONE, ParsedCommand("status", database=None)),
        ("status app", TWO, ParsedCommand("status", database="app")),
        ("log", ONE, ParsedCommand("log", limit=10)),
        ("log 5", ONE, ParsedCommand("log", limit=5)),
        ("log 1", ONE, ParsedCommand("log", limit=1)),
        ("log 50", ONE, ParsedCommand("log", limit=50)),
    ],
)
def test_valid_command_parses_to_request(
    text: str, databases: list[str], expected: ParsedCommand
) -> None:
    assert parse_command(text, databases) == expected


@pytest.mark.parametrize(
    ("text", "databases", "message_parts", "usage_name"),
    [
        ("now", TWO, ["Which database?", "app", "billing"], "now"),
        ("now --label", ONE, ["--label needs a value"], "now"),
        ("now --label --force", ONE, ["--label needs a value"], "now"),
        ("now --force", ONE, ["Unknown option --force"], "now"),
        ("now -f", ONE, ["Unknown option -f"], "now"),
        ("status --label x", ONE, ["Unknown option --label"], "status"),
        ("now app billing", TWO, ["takes one database name, got 2"], "now"),
        ("status app billing", TWO, ["takes one database name, got 2"], "status"),
        ("help me", ONE, ["takes no arguments"], "help"),
        ("log 0", ONE, ["1 to 50"], "log"),
        ("log 51", ONE, ["1 to 50"], "log"),
        ("log x", ONE, ["1 to 50"], "log"),
        ("log -3", ONE, ["1 to 50"], "log"),
        ("log 1 2", ONE, ["at most one number"], "log"),
    ],
)
def test_malformed_command_raises_usage_error_with_subcommand_usage(
    text: str, databases: list[str], message_parts: list[str], usage_name: str
) -> None:
    with pytest.raises(UsageError) as info:
        parse_command(text, databases)

    for part in message_parts:
        assert part in str(info.value)
    assert info.value.usage == SUBCOMMANDS[usage_name].usage


def test_unknown_database_with_typo_suggests_the_close_name() -> None:
    with pytest.raises(UnknownDatabase) as info:
        parse_command("now billnig", TWO)

    message = str(info.value)
    assert "billnig. Did you mean billing?" in message
    assert "Configured: app, billing." in message
    assert info.value.usage == SUBCOMMANDS["now"].usage


def test_unknown_database_without_close_match_lists_configured_only() -> None:
    with pytest.raises(UnknownDatabase) as info:
        parse_command("status warehouse", TWO)

    assert "Did you mean" not in str(info.value)
    assert "Configured: app, billing." in str(info.value)
    assert info.value.usage == SUBCOMMANDS["status"].usage


def test_unknown_database_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_command("now nope", ONE)


def test_unknown_subcommand_suggests_the_close_one_and_shows_all_usages() -> None:
    with pytest.raises(UsageError) as info:
        parse_command("stats", ONE)

    assert "stats is not a /backup command." in str(info.value)
    assert "Did you mean status?" in str(info.value)
    assert info.value.usage.splitlines() == [s.usage for s in SUBCOMMANDS.values()]


def test_unknown_subcommand_without_close_match_has_no_hint() -> None:
    with pytest.raises(UsageError) as info:
        parse_command("restore-everything", ONE)

    assert "Did you mean" not in str(info.value)
    assert info.value.usage


@pytest.mark.parametrize(
    "text", ['now --label "pre deploy', "now --label \u201cpre deploy", "now '"]
)
def test_unclosed_quote_is_a_usage_error_with_quoting_hint(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_command(text, ONE)

    assert "quote is not closed" in str(info.value)
    assert "--label" in info.value.usage


@pytest.mark.parametrize(
    "text",
    [
        "now",
        "now --label",
        "now --bogus",
        "now app billing",
        "now zzz",
        "now apq",
        "stats",
        "frobnicate",
        "status zzz",
        "help please",
        "log 0",
        "log 51",
        "log x",
        "log 1 2",
        'now --label "x',
    ],
)
def test_every_usage_error_carries_non_empty_usage(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_command(text, TWO)

    assert str(info.value)
    assert info.value.usage.strip()


@pytest.mark.parametrize("text", ["log \u00b2", "log \u2075", "log \u2460"])
def test_log_with_unicode_digit_like_count_is_a_usage_error(text: str) -> None:
    # Regression: `str.isdigit()` is True for superscript and
    # circled digits such as "²", but int("²") raises ValueError; `/backup log ²` once
    # crashes with a bare ValueError instead of answering with the usage.
    with pytest.raises(UsageError) as info:
        parse_command(text, ONE)

    assert info.value.usage == SUBCOMMANDS["log"].usage


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("restore app", ("app", "latest", None, False, None)),
        ("restore app latest --into app_copy", ("app", "latest", "app_copy", False, None)),
        ("restore app 1a2b3c4d --in-place", ("app", "1a2b3c4d", None, True, None)),
        (
            'restore app --reason "bad deploy" --into=x',
            ("app", "latest", "x", False, "bad deploy"),
        ),
        (
            "restore app latest --reason=\u201cwrong migration\u201d",
            ("app", "latest", None, False, "wrong migration"),
        ),
    ],
)
def test_restore_commands_parse_into_target_mode_and_reason(
    text: str, expected: tuple[Any, ...]
) -> None:
    p = parse_command(text, ["app", "analytics"])
    assert (p.database, p.backup_ref, p.into, p.in_place, p.reason) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("restore", "Which database?"),
        ("restore ap latest", "Did you mean app?"),
        ("restore app latest --into x --in-place", "Choose one of --into TARGET and --in-place"),
        ("restore app latest --into", "--into needs a value"),
        ("restore app latest --inplace", "Did you mean --in-place?"),
        ("restore app latest extra words", "put the reason in quotes"),
    ],
)
def test_malformed_restore_commands_name_the_problem_and_show_the_usage(
    text: str, problem: str
) -> None:
    with pytest.raises(UsageError) as err:
        parse_command(text, ["app", "analytics"])
    assert problem in str(err.value)
    assert "/backup restore DB" in err.value.usage
