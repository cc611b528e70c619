"""The command registry: each command declared once and offered by every front end."""

from __future__ import annotations

import argparse

import pytest

from backupbot.bot.cli import actions
from backupbot.bot.cli.main import _parser
from backupbot.bot.slack.blocks.status import help_message
from backupbot.bot.slack.listeners import backup_command
from backupbot.commands import registry as r
from backupbot.commands.command_spec import build
from backupbot.commands.parse import parse_command
from backupbot.errors import UsageError

DATABASES = ["app", "billing"]


def test_every_command_has_a_handler_on_each_surface_that_offers_it_and_nowhere_else() -> None:
    slack = {s.request for s in r.specs(r.Surface.SLACK)}
    cli = {s.request for s in r.specs(r.Surface.CLI)}
    assert set(backup_command.HANDLERS) == slack
    assert set(actions.HANDLERS) == cli
    assert set(backup_command.ACKS) <= {s.request for s in r.specs(r.Surface.SLACK) if s.slow}


def test_both_helps_show_every_command_with_its_docstring_summary() -> None:
    slack_help = help_message().text
    for spec in r.specs(r.Surface.SLACK):
        assert spec.usage() in slack_help
    cli_help = _parser().format_help()
    top_level = {spec.cli[0] for spec in r.specs(r.Surface.CLI)}
    assert top_level <= set(cli_help.split())
    for spec in r.specs(r.Surface.CLI):
        sub = _subparser(_parser(), spec.cli)
        assert " ".join(spec.help.split()[:6]) in " ".join(sub.format_help().split())


def _subparser(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> argparse.ArgumentParser:
    for word in words:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[word]
    return parser


@pytest.mark.parametrize(
    ("slack", "cli"),
    [
        ("now billing --label pre-deploy", ["backup", "now", "billing", "--label", "pre-deploy"]),
        (
            'restore app 1a2b --into copy --reason "bad deploy"',
            ["restore", "request", "app", "1a2b", "--into", "copy", "--reason", "bad deploy"],
        ),
        ("restore app --in-place", ["restore", "request", "app", "--in-place"]),
        ("drill", ["drill"]),
        ("retention billing", ["retention", "billing"]),
        ("status", ["status"]),
        ("log 7", ["log", "--limit", "7"]),
        (
            "note app staging-restore pg_restore into staging",
            ["note", "app", "pg_restore into staging", "--kind", "staging-restore"],
        ),
    ],
)
def test_the_same_words_make_the_same_request_in_slack_and_on_the_cli(
    slack: str, cli: list[str]
) -> None:
    assert parse_command(slack, DATABASES) == _cli_request(cli)


def _cli_request(words: list[str]) -> object:
    args = _parser().parse_args(words)
    spec: r.Spec = args.spec
    values = {name: getattr(args, name) for name, _ in spec.args(r.Surface.CLI)}
    return build(spec, values, DATABASES, r.Surface.CLI)


@pytest.mark.parametrize(
    ("cli", "problem"),
    [
        (["backup", "now"], "Which database? Configured: app, billing."),
        (["status", "nope"], "no configured database named nope"),
        (["restore", "run", "app", "--into", "x", "--in-place"], "Choose one of --into TARGET"),
        (["log", "--limit", "501"], "--limit must be a number from 1 to 500."),
        (["note", "app", "x" * 2001], "keep it to 2000"),
        (["note", "app", "done", "--kind", "prod"], "prod is not a kind of note"),
    ],
)
def test_the_cli_refuses_with_the_same_checks_as_slack(cli: list[str], problem: str) -> None:
    with pytest.raises(UsageError) as refused:
        _cli_request(cli)
    assert problem in str(refused.value)


def test_roles_are_the_commands_and_more_for_arguments_that_need_more() -> None:
    assert r.required_role(r.Status()) is r.Role.VIEWER
    assert r.required_role(r.BackupNow("app")) is r.Role.OPERATOR
    assert r.required_role(r.Retention()) is r.Role.VIEWER
    assert r.required_role(r.Retention(apply=True)) is r.Role.ADMIN
    assert r.required_role(r.RestoreRun("app")) is r.Role.ADMIN
