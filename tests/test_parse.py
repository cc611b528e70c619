"""`/backup ...` text to a request from the registry: the Slack grammar."""

from __future__ import annotations

from typing import Any

import pytest

from backupbot.commands.command_spec import usage_of
from backupbot.commands.parse import parse_command
from backupbot.commands.registry import BackupNow, Help, Log, Note, Status
from backupbot.errors import UnknownDatabase, UsageError

ONE = ["app"]
TWO = ["app", "billing"]


@pytest.mark.parametrize(
    ("text", "databases", "expected"),
    [
        ("", ONE, Help()),
        ("   ", ONE, Help()),
        ("help", ONE, Help()),
        ("HELP", TWO, Help()),
        ("now", ONE, BackupNow("app")),
        ("  now  ", ONE, BackupNow("app")),
        ("Now billing", TWO, BackupNow("billing")),
        ("now app", ONE, BackupNow("app")),
        (
            "now app --label pre-deploy",
            TWO,
            BackupNow("app", label="pre-deploy"),
        ),
        (
            "now --label pre-deploy app",
            TWO,
            BackupNow("app", label="pre-deploy"),
        ),
        ("now --label=x", ONE, BackupNow("app", label="x")),
        ("now --label=a=b", ONE, BackupNow("app", label="a=b")),
        ('now --label "two words"', ONE, BackupNow("app", label="two words")),
        ("now --label 'two words'", ONE, BackupNow("app", label="two words")),
        (
            "now --label \u201ctwo words\u201d",
            ONE,
            BackupNow("app", label="two words"),
        ),
        (
            "now --label \u2018two words\u2019",
            ONE,
            BackupNow("app", label="two words"),
        ),
        # Slack turns `--` into an em dash on some clients.
        ("now \u2014label x", ONE, BackupNow("app", label="x")),
        ("status", TWO, Status()),
        ("status", ONE, Status()),
        ("status app", TWO, Status("app")),
        ("log", ONE, Log(limit=10)),
        ("log 5", ONE, Log(limit=5)),
        ("log 1", ONE, Log(limit=1)),
        ("log 50", ONE, Log(limit=50)),
        # a note's text is the rest of the line as typed: quotes and apostrophes too
        ("note app it's done", ONE, Note("app", "other", "it's done")),
        (
            'note billing restore "2b" via pg_restore',
            TWO,
            Note("billing", "restore", '"2b" via pg_restore'),
        ),
    ],
)
def test_valid_command_parses_to_request(text: str, databases: list[str], expected: object) -> None:
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
    assert info.value.command == usage_name


def test_unknown_database_with_typo_suggests_the_close_name() -> None:
    with pytest.raises(UnknownDatabase) as info:
        parse_command("now billnig", TWO)

    message = str(info.value)
    assert "billnig. Did you mean billing?" in message
    assert "Configured: app, billing." in message
    assert info.value.command == "now"


def test_unknown_database_without_close_match_lists_configured_only() -> None:
    with pytest.raises(UnknownDatabase) as info:
        parse_command("status warehouse", TWO)

    assert "Did you mean" not in str(info.value)
    assert "Configured: app, billing." in str(info.value)
    assert info.value.command == "status"


def test_unknown_database_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_command("now nope", ONE)


def test_unknown_subcommand_suggests_the_close_one_and_shows_all_usages() -> None:
    with pytest.raises(UsageError) as info:
        parse_command("stats", ONE)

    assert "stats is not a /backup command." in str(info.value)
    assert "Did you mean status?" in str(info.value)
    assert info.value.command == UsageError.ALL_COMMANDS


def test_unknown_subcommand_without_close_match_has_no_hint() -> None:
    with pytest.raises(UsageError) as info:
        parse_command("restore-everything", ONE)

    assert "Did you mean" not in str(info.value)
    assert usage_of(info.value.command)


@pytest.mark.parametrize(
    "text", ['now --label "pre deploy', "now --label \u201cpre deploy", "now '"]
)
def test_unclosed_quote_is_a_usage_error_with_quoting_hint(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_command(text, ONE)

    assert "quote is not closed" in str(info.value)
    assert "--label" in usage_of(info.value.command)


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
        "note",
        "note app",
        "note zzz done",
    ],
)
def test_every_usage_error_carries_non_empty_usage(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_command(text, TWO)

    assert str(info.value)
    assert usage_of(info.value.command).strip()


@pytest.mark.parametrize("text", ["log \u00b2", "log \u2075", "log \u2460"])
def test_log_with_unicode_digit_like_count_is_a_usage_error(text: str) -> None:
    # Regression: `str.isdigit()` is True for superscript and
    # circled digits such as "²", but int("²") raises ValueError; `/backup log ²` once
    # crashes with a bare ValueError instead of answering with the usage.
    with pytest.raises(UsageError) as info:
        parse_command(text, ONE)

    assert info.value.command == "log"


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
    assert "/backup restore DB" in usage_of(err.value.command)
