"""Who may acknowledge an alert, as a table: the people of the fired escalation levels
(directly or through a user group), admins, and operators only while the fired levels
mention nobody; guests never. The directory is a plain mapping (the real one, Slack's
`usergroups.users.list` and `users.info`, is tested through the serve process)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backupbot.commands.access import Access, AccessRules, grants_from
from backupbot.commands.command_spec import Role
from backupbot.commands.escalation_ack import AckRule
from backupbot.settings import EscalationLevel
from backupbot.storage.alerts import OPEN, AlertRecord

LEVELS = [
    EscalationLevel(name="DevOps Lead", after_minutes=0, mention=["U0LEAD"]),
    EscalationLevel(name="Database Admin", after_minutes=15, mention=["S0DBA"]),
    EscalationLevel(name="Provider support", after_minutes=30, provider_support=True),
]
NOBODY = [EscalationLevel(name="DevOps Lead"), EscalationLevel(name="DBA", after_minutes=15)]


class Directory:
    groups = {"S0DBA": frozenset({"U0DBA"}), "S0OPS": frozenset({"U0OPS"})}
    guests = frozenset({"U0GUEST"})

    def members(self, group: str) -> frozenset[str]:
        return self.groups.get(group, frozenset())

    def is_guest(self, user: str) -> bool:
        return user in self.guests


def _access(default: Role | None = Role.OPERATOR) -> Access:
    rules = AccessRules(
        grants=grants_from({"admin": ["U0ADMIN"], "viewer": ["U0VIEW"]}, ["U0APPR"], None),
        default=default,
        channels=frozenset({"C0BACKUPS"}),
    )
    return Access(rules, Directory())


def _alert(levels_fired: int) -> AlertRecord:
    return AlertRecord(
        id="a1",
        condition="backup_failed",
        database="app",
        status=OPEN,
        summary="Backup failed.",
        details={},
        opened_at=datetime(2026, 12, 1, tzinfo=UTC),
        levels_fired=levels_fired,
        acknowledged_by=None,
        acknowledged_at=None,
        resolved_at=None,
        resolution=None,
        channel="C0BACKUPS",
        message_ts="1.1",
    )


@pytest.mark.parametrize(
    ("levels", "fired", "user", "allowed"),
    [
        (LEVELS, 1, "U0LEAD", True),  # mentioned in the fired level
        (LEVELS, 1, "U0DBA", False),  # their level has not fired yet
        (LEVELS, 2, "U0DBA", True),  # ... now it has (through the group)
        (LEVELS, 2, "U0LEAD", True),  # an earlier level still counts
        (LEVELS, 3, "U0OPS", False),  # an operator, but the path names people
        (LEVELS, 1, "U0ADMIN", True),  # admins always
        (LEVELS, 1, "U0APPR", False),  # approving restores is not on the path
        (LEVELS, 0, "U0OPS", True),  # nothing fired yet: the fired levels name nobody
        (NOBODY, 2, "U0OPS", True),  # the default config: operators
        (NOBODY, 2, "U0VIEW", False),  # ... not viewers
        (NOBODY, 2, "U0GUEST", False),  # guests never
        (LEVELS, 1, "U0GUEST", False),
    ],
)
def test_who_may_acknowledge(
    levels: list[EscalationLevel], fired: int, user: str, allowed: bool
) -> None:
    rule = AckRule(levels, _access(), Directory())
    assert (rule.refusal(_alert(fired), user) is None) is allowed


def test_a_refusal_names_who_may_acknowledge_now() -> None:
    rule = AckRule(LEVELS, _access(), Directory())
    refusal = rule.refusal(_alert(2), "U0OPS")
    assert refusal is not None
    assert str(refusal) == (
        "You are not on this alert's escalation path so far. This alert can be acknowledged "
        "now by U0LEAD or members of @S0DBA or an admin (U0ADMIN); later levels add their "
        "people when they fire. It keeps pinging."
    )
    default = AckRule(NOBODY, _access(), Directory()).refusal(_alert(1), "U0VIEW")
    assert default is not None and "by an operator or an admin (U0ADMIN)" in str(default)
