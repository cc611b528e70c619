"""The access table: who holds which role, from where, and what a refusal says."""

from __future__ import annotations

import pytest

from backupbot.bot.infrastructure import access_rules
from backupbot.commands.access import AccessRules, CachedDirectory, Caller, grants_from
from backupbot.commands.command_spec import Role
from backupbot.commands.registry import REGISTRY, BackupNow, Log, RestoreRun, Retention, Status
from backupbot.settings import Settings

CHANNEL = "C0BACKUPS"
RULES = AccessRules(
    grants=grants_from(
        {"admin": ["U0ADMIN"], "operator": ["S0OPS"], "viewer": ["U0VIEW"]},
        approvers=["U0BOB"],
        approver_group="S0DBA",
    ),
    default=None,
    channels=frozenset({CHANNEL}),
    team="T0OURS",
    group_names={"S0OPS": "ops"},
)


@pytest.mark.parametrize(
    ("caller", "needed", "refused"),
    [
        (Caller("U0ADMIN", channel=CHANNEL), Role.ADMIN, None),
        (Caller("U0BOB", channel=CHANNEL), Role.APPROVER, None),
        (Caller("U0BOB", channel=CHANNEL), Role.ADMIN, "access.role"),
        (Caller("U0CAROL", channel=CHANNEL, groups=frozenset({"S0OPS"})), Role.OPERATOR, None),
        (
            Caller("U0CAROL", channel=CHANNEL, groups=frozenset({"S0OPS"})),
            Role.APPROVER,
            "access.role",
        ),
        (Caller("U0CAROL", channel=CHANNEL, groups=frozenset({"S0DBA"})), Role.APPROVER, None),
        (Caller("U0VIEW", channel=CHANNEL), Role.VIEWER, None),
        (Caller("U0VIEW", channel=CHANNEL), Role.OPERATOR, "access.role"),
        (Caller("U0NOBODY", channel=CHANNEL), Role.VIEWER, "access.role"),  # default: none
        (Caller("U0ADMIN", channel=CHANNEL, guest=True), Role.VIEWER, None),
        (Caller("U0ADMIN", channel=CHANNEL, guest=True), Role.OPERATOR, "access.role"),
        (Caller("U0ADMIN", channel="C0ELSEWHERE"), Role.VIEWER, "access.channel"),
        (Caller("U0ADMIN", channel=None), Role.ADMIN, None),  # a button on our own message
        (Caller("U0ADMIN", team="T0OTHER", channel=CHANNEL), Role.VIEWER, "access.workspace"),
    ],
)
def test_the_table_decides(caller: Caller, needed: Role, refused: str | None) -> None:
    refusal = RULES.check(caller, needed)
    assert (refusal.code if refusal else None) == refused


def test_a_role_refusal_names_the_role_needed_yours_and_who_has_it() -> None:
    refusal = RULES.check(Caller("U0VIEW", channel=CHANNEL), Role.APPROVER)
    assert refusal is not None
    assert str(refusal.message) == (
        "This needs the approver role; you have the viewer role. "
        "U0ADMIN, U0BOB, members of @S0DBA can."
    )
    guest = RULES.check(Caller("U0ADMIN", channel=CHANNEL, guest=True), Role.ADMIN)
    assert guest is not None and "(guests are viewers at most)" in str(guest.message)
    channel = RULES.check(Caller("U0ADMIN", channel="C0X"), Role.VIEWER)
    assert channel is not None and str(channel.message) == (
        "Use /backup in #C0BACKUPS; it is not taken from here."
    )


def test_every_command_needs_a_role_and_arguments_can_need_more() -> None:
    roles = {spec.request: spec.role for spec in REGISTRY.values()}
    assert roles[Status] is Role.VIEWER and roles[Log] is Role.VIEWER
    assert roles[BackupNow] is Role.OPERATOR and roles[RestoreRun] is Role.ADMIN
    assert REGISTRY[Retention].required_role(Retention(apply=True)) is Role.ADMIN


def _settings(**extra: object) -> Settings:
    return Settings.model_validate(
        {
            "storage": {"local": {"path": "/tmp/x"}},
            "slack": {"channel": CHANNEL, "approvers": ["U0BOB"]},
            "databases": [{"name": "app", "url": "postgresql://u@h/app"}],
            **extra,
        }
    )


def test_without_an_access_section_the_channel_are_operators_and_approvers_approve() -> None:
    rules = access_rules(_settings())
    assert rules.role_of(Caller("U0ANYONE", channel=CHANNEL)) is Role.OPERATOR
    assert rules.role_of(Caller("U0BOB", channel=CHANNEL)) is Role.APPROVER
    assert rules.channels == {CHANNEL}


def test_an_access_section_grants_roles_and_defaults_to_viewer() -> None:
    rules = access_rules(_settings(access={"roles": {"admin": ["U0ADMIN"]}, "channels": ["C0OPS"]}))
    assert rules.role_of(Caller("U0ANYONE")) is Role.VIEWER
    assert rules.role_of(Caller("U0ADMIN")) is Role.ADMIN
    assert rules.channels == {CHANNEL, "C0OPS"}


def test_the_config_refuses_members_that_are_not_slack_ids() -> None:
    with pytest.raises(ValueError, match="not a Slack user id"):
        _settings(access={"roles": {"admin": ["@alice"]}})


class CountingDirectory:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def members(self, group: str) -> frozenset[str]:
        self.asked.append(group)
        return frozenset({"U0A"})

    def is_guest(self, user: str) -> bool:
        self.asked.append(user)
        return user == "U0G"


def test_the_directory_is_asked_once_per_ttl() -> None:
    now = [0.0]
    inner = CountingDirectory()
    cached = CachedDirectory(inner, ttl=60, monotonic=lambda: now[0])
    assert cached.members("S0X") == {"U0A"} and cached.members("S0X") == {"U0A"}
    assert cached.is_guest("U0G") and cached.is_guest("U0G")
    assert inner.asked == ["S0X", "U0G"]
    now[0] = 61
    cached.members("S0X")
    assert inner.asked == ["S0X", "U0G", "S0X"]
