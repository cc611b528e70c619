"""Who may approve, deny or cancel a restore request: the access rules as a table."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from backupbot.bot.slack.kit import render
from backupbot.commands.access import Access, AccessRules, CachedDirectory, grants_from
from backupbot.commands.approval_stages import DEFAULT_STAGE, Stage, total_needed
from backupbot.commands.approvals import (
    ACCESS_RULES,
    ACTIONS,
    ApprovalPolicy,
    CachedApprovers,
    at_least_two,
    check_click,
)
from backupbot.commands.command_spec import Role
from backupbot.errors import BackupbotError
from backupbot.storage.restores import (
    CANCELLED,
    DENIED,
    EXPIRED,
    FAILED,
    RUNNING,
    SUCCEEDED,
)
from tests.restore_records import restore_record

CREATED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
EXPIRES = CREATED + timedelta(minutes=30)
BEFORE_EXPIRY = EXPIRES - timedelta(seconds=1)
AFTER_EXPIRY = EXPIRES + timedelta(seconds=1)
DECIDED_AT = CREATED + timedelta(minutes=5)

REQUESTER = "UREQUESTER"
APPROVER = "UAPPROVER"
APPROVED = "UAPPROVED"  # an approver who has already approved this request
OUTSIDER = "UOUTSIDER"
DECIDER = "UDECIDER"

# The requester is listed as an approver on purpose: the two-person rule must still hold.
APPROVERS = frozenset({REQUESTER, APPROVER, APPROVED, DECIDER})
USERS = {"requester": REQUESTER, "approver": APPROVER, "approved": APPROVED, "outsider": OUTSIDER}

BASE = restore_record(
    CREATED,
    requester=REQUESTER,
    required_approvals=2,
    approval_count=1,
    approvals=[{"user": APPROVED, "at": (CREATED + timedelta(minutes=1)).isoformat()}],
    expires_at=EXPIRES,
)


def listed_approver(user: str) -> bool:
    return user in APPROVERS


def policy(required: int = 1) -> ApprovalPolicy:
    """The policy `approval_policy` builds without an `approvals:` section."""
    stages = (Stage(DEFAULT_STAGE, required),)
    return ApprovalPolicy(stages, at_least_two(stages), timeout=timedelta(minutes=30))


def by_role(is_approver: Callable[[str], bool]) -> Callable[[Stage, str], bool]:
    """Stage eligibility for the default stage: the approver role."""
    return lambda _stage, user: is_approver(user)


# -- the table --------------------------------------------------------------------------

PENDING_TABLE: list[tuple[str, str, bool, str | None]] = [
    # (action, role, after expiry, expected refusal code)
    ("approve", "requester", False, "self"),
    ("approve", "approver", False, None),
    ("approve", "outsider", False, "outsider"),
    ("approve", "approved", False, "duplicate"),
    ("deny", "requester", False, "self"),
    ("deny", "approver", False, None),
    ("deny", "outsider", False, "outsider"),
    ("deny", "approved", False, None),
    ("cancel", "requester", False, None),
    ("cancel", "approver", False, "not_requester"),
    ("cancel", "outsider", False, "not_requester"),
    ("cancel", "approved", False, "not_requester"),
    ("launch", "approver", False, "unknown"),
    ("", "requester", False, "unknown"),
    *((action, role, True, "expired") for action in ACTIONS for role in USERS),
    ("launch", "approver", True, "unknown"),
]

DECIDED_STATUSES = (RUNNING, SUCCEEDED, FAILED, DENIED, CANCELLED, EXPIRED)
DECIDED_TABLE: list[tuple[str, str, str, bool]] = [
    (status, action, role, late)
    for status in DECIDED_STATUSES
    for action in ACTIONS
    for role in USERS
    for late in (False, True)
]


@pytest.mark.parametrize(
    ("action", "role", "late", "expected"),
    PENDING_TABLE,
    ids=[f"{a or 'empty'}-{r}-{'late' if t else 'in_time'}" for a, r, t, _ in PENDING_TABLE],
)
def test_pending_request_click_is_allowed_or_refused_per_access_table(
    action: str, role: str, late: bool, expected: str | None
) -> None:
    now = AFTER_EXPIRY if late else BEFORE_EXPIRY
    refusal = check_click(BASE, action, USERS[role], now, by_role(listed_approver))
    assert (refusal.code if refusal else None) == expected
    if refusal is not None:
        assert str(refusal.message).strip(), "a refusal must explain itself"


@pytest.mark.parametrize(
    ("status", "action", "role", "late"),
    DECIDED_TABLE,
    ids=[f"{s}-{a}-{r}-{'late' if t else 'in_time'}" for s, a, r, t in DECIDED_TABLE],
)
def test_any_click_after_a_decision_is_refused_as_decided_naming_the_decider(
    status: str, action: str, role: str, late: bool
) -> None:
    record = dataclasses.replace(BASE, status=status, decided_by=DECIDER, decided_at=DECIDED_AT)
    now = AFTER_EXPIRY if late else BEFORE_EXPIRY
    refusal = check_click(record, action, USERS[role], now, by_role(listed_approver))
    assert refusal is not None
    assert refusal.code == "decided"
    assert f"<@{DECIDER}>" in render(refusal.message)  # a mention in Slack
    assert "2024-05-01 12:05 UTC" in str(refusal.message)


@pytest.mark.parametrize(
    ("status", "word"),
    [
        (DENIED, "denied"),
        (CANCELLED, "cancelled"),
        (EXPIRED, "expired"),
        (RUNNING, "approved"),
        (SUCCEEDED, "approved"),
        (FAILED, "approved"),
    ],
)
def test_decided_refusal_says_what_the_decision_was(status: str, word: str) -> None:
    record = dataclasses.replace(BASE, status=status, decided_by=DECIDER, decided_at=DECIDED_AT)
    refusal = check_click(record, "approve", APPROVER, BEFORE_EXPIRY, by_role(listed_approver))
    assert refusal is not None
    assert f"already {word} by <@{DECIDER}>" in render(refusal.message)
    assert f"already {word} by {DECIDER}" in str(refusal.message)  # plain in records


def test_request_expired_by_the_bot_names_the_bot_as_decider() -> None:
    record = dataclasses.replace(BASE, status=EXPIRED, decided_by="backupbot", decided_at=EXPIRES)
    refusal = check_click(record, "approve", APPROVER, AFTER_EXPIRY, by_role(listed_approver))
    assert refusal is not None
    assert refusal.code == "decided"
    assert "already expired by `backupbot`" in render(refusal.message)


def test_click_exactly_at_expiry_is_refused_as_expired() -> None:
    refusal = check_click(BASE, "approve", APPROVER, EXPIRES, by_role(listed_approver))
    assert refusal is not None
    assert refusal.code == "expired"
    assert "2024-05-01 12:30 UTC" in str(refusal.message)


def test_unknown_action_is_refused_even_after_a_decision() -> None:
    record = dataclasses.replace(BASE, status=DENIED, decided_by=DECIDER, decided_at=DECIDED_AT)
    refusal = check_click(record, "restore_now", APPROVER, BEFORE_EXPIRY, by_role(listed_approver))
    assert refusal is not None
    assert refusal.code == "unknown"
    assert "restore_now" in str(refusal.message)


def test_duplicate_approval_says_how_many_more_are_needed() -> None:
    three = dataclasses.replace(BASE, required_approvals=3)
    refusal = check_click(three, "approve", APPROVED, BEFORE_EXPIRY, by_role(listed_approver))
    assert refusal is not None
    assert refusal.code == "duplicate"
    assert "needs 2 more approval(s)" in str(refusal.message)

    two = check_click(BASE, "approve", APPROVED, BEFORE_EXPIRY, by_role(listed_approver))
    assert two is not None
    assert "needs 1 more approval(s)" in str(two.message)


def test_requester_listed_as_approver_is_told_to_cancel_instead_of_deny() -> None:
    refusal = check_click(BASE, "deny", REQUESTER, BEFORE_EXPIRY, by_role(listed_approver))
    assert refusal is not None
    assert refusal.code == "self"
    assert "Cancel" in str(refusal.message)


def test_approver_check_is_not_consulted_for_the_requester() -> None:
    asked: list[str] = []

    def everyone(user: str) -> bool:
        asked.append(user)
        return True

    refusal = check_click(BASE, "approve", REQUESTER, BEFORE_EXPIRY, by_role(everyone))
    assert refusal is not None and refusal.code == "self"
    assert asked == []


def test_access_rules_cover_every_action() -> None:
    assert set(ACCESS_RULES) == set(ACTIONS)
    assert ACCESS_RULES["cancel"] == "requester"
    assert ACCESS_RULES["approve"] == ACCESS_RULES["deny"] == "approver"


# -- required approvals -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "protected", "in_place", "expected"),
    [
        (1, True, True, 2),
        (2, True, True, 2),
        (3, True, True, 3),
        (1, True, False, 1),
        (1, False, True, 1),
        (1, False, False, 1),
        (3, False, True, 3),
        (3, True, False, 3),
    ],
)
def test_in_place_restore_of_protected_database_needs_at_least_two_approvals(
    configured: int, protected: bool, in_place: bool, expected: int
) -> None:
    stages = policy(required=configured).stages_for(protected=protected, in_place=in_place)
    assert total_needed(stages) == expected


# -- nobody without approvers ------------------------------------------------------------


def approvers_of(
    listed: frozenset[str] = frozenset(),
    group: str | None = None,
    directory: CountingDirectory | None = None,
    clock: FakeMonotonic | None = None,
) -> CachedApprovers:
    """Approvers as `access.py` derives them from `slack.approvers` and `approver_group`."""
    rules = AccessRules(
        grants=grants_from({}, listed, group), default=Role.OPERATOR, channels=frozenset()
    )
    cached = (
        CachedDirectory(directory, ttl=TTL, monotonic=clock or FakeMonotonic())
        if directory is not None
        else None
    )
    return CachedApprovers(Access(rules, cached))


def test_without_approvers_nobody_may_approve_not_even_an_operator() -> None:
    approvers = approvers_of()
    refusal = check_click(BASE, "approve", OUTSIDER, BEFORE_EXPIRY, approvers.eligible)
    assert refusal is not None and refusal.code == "outsider"
    assert "slack.approvers" in str(refusal.message)
    own = check_click(BASE, "approve", REQUESTER, BEFORE_EXPIRY, approvers.eligible)
    assert own is not None


def test_listed_approvers_policy_refuses_people_not_listed() -> None:
    approvers = approvers_of(frozenset({APPROVER}))
    assert check_click(BASE, "approve", APPROVER, BEFORE_EXPIRY, approvers.eligible) is None
    refusal = check_click(BASE, "approve", OUTSIDER, BEFORE_EXPIRY, approvers.eligible)
    assert refusal is not None and refusal.code == "outsider"


def test_a_listed_approver_who_is_a_guest_may_not_approve() -> None:
    directory = CountingDirectory({}, guests={APPROVER})
    approvers = approvers_of(frozenset({APPROVER}), directory=directory)
    assert not approvers.is_approver(APPROVER)


# -- the approver group -----------------------------------------------------------------


class CountingDirectory:
    """A Slack user-group directory held in memory, counting how often groups are asked."""

    def __init__(self, groups: dict[str, set[str]], guests: set[str] | None = None) -> None:
        self.groups = groups
        self.guests = guests or set()
        self.calls: list[str] = []
        self.failure: BackupbotError | None = None

    def members(self, group: str) -> frozenset[str]:
        self.calls.append(group)
        if self.failure is not None:
            raise self.failure
        if group not in self.groups:
            raise BackupbotError(f"The user group {group} does not exist.")
        return frozenset(self.groups[group])

    def is_guest(self, user: str) -> bool:
        return user in self.guests


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


GROUP = "S0DBAS"
TTL = 300.0


def group_approvers(
    directory: CountingDirectory, clock: FakeMonotonic, listed: frozenset[str] = frozenset()
) -> CachedApprovers:
    return approvers_of(listed, GROUP, directory, clock)


def test_group_members_are_approvers_and_others_are_not() -> None:
    directory = CountingDirectory({GROUP: {APPROVER}})
    approvers = group_approvers(directory, FakeMonotonic())
    assert approvers.is_approver(APPROVER)
    assert not approvers.is_approver(OUTSIDER)
    assert check_click(BASE, "approve", APPROVER, BEFORE_EXPIRY, approvers.eligible) is None
    refusal = check_click(BASE, "approve", OUTSIDER, BEFORE_EXPIRY, approvers.eligible)
    assert refusal is not None and refusal.code == "outsider"


def test_group_membership_is_cached_within_ttl() -> None:
    directory = CountingDirectory({GROUP: {APPROVER}})
    clock = FakeMonotonic()
    approvers = group_approvers(directory, clock)
    assert approvers.is_approver(APPROVER)
    clock.now += TTL - 0.5
    assert approvers.is_approver(APPROVER)
    assert not approvers.is_approver(OUTSIDER)
    assert directory.calls == [GROUP]


def test_removed_group_member_loses_the_right_after_ttl() -> None:
    directory = CountingDirectory({GROUP: {APPROVER, DECIDER}})
    clock = FakeMonotonic()
    approvers = group_approvers(directory, clock)
    assert approvers.is_approver(APPROVER)

    directory.groups[GROUP].discard(APPROVER)
    clock.now += TTL - 0.5
    assert approvers.is_approver(APPROVER), "still cached: the directory is not asked yet"
    assert directory.calls == [GROUP]

    clock.now += 0.5
    assert not approvers.is_approver(APPROVER)
    assert approvers.is_approver(DECIDER)
    assert directory.calls == [GROUP, GROUP]
    refusal = check_click(BASE, "approve", APPROVER, BEFORE_EXPIRY, approvers.eligible)
    assert refusal is not None and refusal.code == "outsider"


def test_listed_approver_does_not_need_the_directory() -> None:
    directory = CountingDirectory({GROUP: set()})
    approvers = group_approvers(directory, FakeMonotonic(), listed=frozenset({APPROVER}))
    assert approvers.is_approver(APPROVER)
    assert directory.calls == []


def test_directory_failure_propagates_out_of_the_click_check() -> None:
    directory = CountingDirectory({GROUP: {APPROVER}})
    directory.failure = BackupbotError("Slack could not list the user group S0DBAS.")
    approvers = group_approvers(directory, FakeMonotonic())
    with pytest.raises(BackupbotError, match="could not list the user group"):
        approvers.is_approver(APPROVER)
    with pytest.raises(BackupbotError, match="could not list the user group"):
        check_click(BASE, "approve", APPROVER, BEFORE_EXPIRY, approvers.eligible)


def test_directory_failure_is_not_cached_and_next_check_asks_again() -> None:
    directory = CountingDirectory({GROUP: {APPROVER}})
    directory.failure = BackupbotError("Slack is unreachable.")
    approvers = group_approvers(directory, FakeMonotonic())
    with pytest.raises(BackupbotError):
        approvers.is_approver(APPROVER)
    directory.failure = None
    assert approvers.is_approver(APPROVER)
    assert directory.calls == [GROUP, GROUP]


def test_unknown_group_raises_backupbot_error() -> None:
    approvers = group_approvers(CountingDirectory({}), FakeMonotonic())
    with pytest.raises(BackupbotError, match="does not exist"):
        approvers.is_approver(APPROVER)


def test_group_without_slack_connection_raises_plain_error() -> None:
    approvers = approvers_of(group=GROUP)
    with pytest.raises(BackupbotError, match="without a Slack connection"):
        approvers.is_approver(APPROVER)
