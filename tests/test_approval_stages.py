"""Staged approvals as data: stage progress, the click rules against stages, resolving
a policy for a new request, reminder times, and the `approvals:` config section."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backupbot.commands.access import Access, AccessRules, CachedDirectory, grants_from
from backupbot.commands.approval_stages import (
    ALL,
    DEFAULT_STAGE,
    Stage,
    current_index,
    progress,
    stages_of,
    total_needed,
)
from backupbot.commands.approvals import CachedApprovers, Unapprovable, at_least_two, check_click
from backupbot.commands.command_spec import Role
from backupbot.commands.restore_decisions import reminder_times
from backupbot.errors import ConfigError
from backupbot.settings.loading import parse_settings
from tests.restore_records import restore_record
from tests.test_restore_policy import CountingDirectory

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
REQUESTER, DBA_1, DBA_2, LEAD_1, LEAD_2, GUEST = (
    "UREQ",
    "UDBA1",
    "UDBA2",
    "ULEAD1",
    "ULEAD2",
    "UGUEST",
)
DBA = "S0DBA"
DIRECTORY = CountingDirectory({DBA: {DBA_1, DBA_2, REQUESTER, GUEST}}, guests={GUEST})
STAGES = (
    Stage("DBA", 1, (DBA,)),
    Stage("Leads", ALL, (LEAD_1, LEAD_2), members=(LEAD_1, LEAD_2)),
)


def approvers(grants: dict[str, list[str]] | None = None) -> CachedApprovers:
    rules = AccessRules(
        grants=grants_from(grants or {}, [], None), default=Role.OPERATOR, channels=frozenset()
    )
    return CachedApprovers(Access(rules, CachedDirectory(DIRECTORY)))


def pending(approvals: list[dict[str, Any]], stages: tuple[Stage, ...] = STAGES) -> Any:
    return restore_record(
        NOW,
        requester=REQUESTER,
        policy=[s.as_json() for s in stages],
        required_approvals=total_needed(stages),
        approval_count=len(approvals),
        approvals=approvals,
    )


def given(*pairs: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"user": u, "stage": i, "at": NOW.isoformat()} for u, i in pairs]


# -- progress ----------------------------------------------------------------------------


def test_progress_names_who_approved_in_each_stage_and_which_is_current() -> None:
    first, second = progress(STAGES, given((DBA_1, 0)))
    assert first.done and not first.current and first.approved_by == (DBA_1,)
    assert second.current and second.waiting_on == (LEAD_1, LEAD_2)
    assert current_index(STAGES, given((DBA_1, 0), (LEAD_1, 1))) == 1
    assert current_index(STAGES, given((DBA_1, 0), (LEAD_1, 1), (LEAD_2, 1))) is None


def test_a_request_stored_before_stages_is_one_stage_of_the_approver_role() -> None:
    [stage] = stages_of([], required_approvals=2)
    assert stage == Stage(DEFAULT_STAGE, 2)
    # approvals without a stage count in the first
    assert progress((stage,), [{"user": DBA_1}])[0].approved_by == (DBA_1,)


def test_stages_round_trip_through_their_stored_form() -> None:
    assert stages_of([s.as_json() for s in STAGES], 3) == STAGES


def test_protected_in_place_needs_two_approvals_in_all() -> None:
    assert total_needed(at_least_two((Stage("A", 1),))) == 2
    assert at_least_two((Stage("A", 1), Stage("B", 1))) == (Stage("A", 1), Stage("B", 1))
    assert at_least_two((Stage("A", 1), Stage("B", 3))) == (Stage("A", 1), Stage("B", 3))


# -- clicks against stages ---------------------------------------------------------------

CLICKS: list[tuple[str, list[tuple[str, int]], str, str | None]] = [
    # (who clicks approve, approvals so far, expected refusal code or None)
    (DBA_1, [], "approve", None),
    (DBA_2, [], "approve", None),
    (GUEST, [], "approve", "outsider"),  # in the group, but a guest
    (LEAD_1, [], "approve", "stage"),  # the DBA stage comes first
    (LEAD_1, [], "deny", None),  # anyone named in any stage may deny
    (DBA_2, [(DBA_1, 0)], "approve", "stage"),  # DBA stage complete; not a lead
    (LEAD_1, [(DBA_1, 0)], "approve", None),
    (LEAD_1, [(DBA_1, 0), (LEAD_1, 1)], "approve", "duplicate"),
    (REQUESTER, [], "approve", "self"),  # in the DBA group, but the requester
    ("UNOBODY", [], "approve", "outsider"),
    ("UNOBODY", [], "deny", "outsider"),
]


@pytest.mark.parametrize(("user", "so_far", "action", "expected"), CLICKS)
def test_clicks_follow_the_stages(
    user: str, so_far: list[tuple[str, int]], action: str, expected: str | None
) -> None:
    refusal = check_click(pending(given(*so_far)), action, user, NOW, approvers().eligible)
    assert (refusal.code if refusal else None) == expected


def test_a_person_in_two_stages_counts_once() -> None:
    both = (Stage("First", 1, (DBA_1,)), Stage("Second", 1, (DBA_1, LEAD_1)))
    record = pending(given((DBA_1, 0)), both)
    refusal = check_click(record, "approve", DBA_1, NOW, approvers().eligible)
    assert refusal is not None and refusal.code == "duplicate"
    assert check_click(record, "approve", LEAD_1, NOW, approvers().eligible) is None


def test_the_outsider_refusal_names_who_can_approve() -> None:
    refusal = check_click(pending([]), "approve", "UNOBODY", NOW, approvers().eligible)
    assert refusal is not None
    assert f"{DBA}, {LEAD_1}, {LEAD_2}" in str(refusal.message)


# -- resolving a policy for a new request -------------------------------------------------


def test_all_of_a_group_means_its_people_but_not_the_requester_or_guests() -> None:
    [stage] = approvers().resolve((Stage("DBA", ALL, (DBA,)),), REQUESTER)
    assert stage.members == (DBA_1, DBA_2) and stage.needed == 2


def test_the_default_stage_takes_the_approver_role_as_granted_at_request_time() -> None:
    [stage] = approvers({"approver": [LEAD_1], "admin": [LEAD_2]}).resolve(
        (Stage(DEFAULT_STAGE, 1),), REQUESTER
    )
    assert stage.approvers == (LEAD_1, LEAD_2)


@pytest.mark.parametrize(
    ("stage", "grants"),
    [
        (Stage("Owner", 1, (REQUESTER,)), {}),  # only the requester named
        (Stage("DBA", 3, (DBA,)), {}),  # two people besides the requester (a guest left out)
        (Stage("DBA", ALL, (REQUESTER, GUEST)), {}),  # nobody left once both are taken out
        (Stage(DEFAULT_STAGE, 1), {}),  # nobody holds the approver role
        (Stage(DEFAULT_STAGE, 1), {"approver": [REQUESTER]}),
    ],
)
def test_a_request_nobody_could_approve_is_refused(
    stage: Stage, grants: dict[str, list[str]]
) -> None:
    with pytest.raises(Unapprovable, match="Nobody could approve this restore"):
        approvers(grants).resolve((stage,), REQUESTER)


# -- reminders ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [(30, [15, 25]), (60, [30, 55]), (10, [5]), (4, [2])],
)
def test_reminders_come_halfway_and_five_minutes_before_when_that_is_later(
    minutes: int, expected: list[int]
) -> None:
    record = restore_record(NOW, expires_at=NOW + timedelta(minutes=minutes))
    assert reminder_times(record) == [NOW + timedelta(minutes=m) for m in expected]


# -- the config section ------------------------------------------------------------------


def _config(approvals: dict[str, Any]) -> dict[str, Any]:
    return {
        "storage": {"local": {"path": "/tmp/x"}},
        "slack": {"channel": "C0BACKUPS"},
        "databases": [{"name": "app", "url": "postgresql://u@h/app"}],
        "approvals": approvals,
    }


@pytest.mark.parametrize(
    ("approvals", "message"),
    [
        ({"stages": [{"name": "A", "need": "all"}]}, "need: all needs approvers"),
        ({"stages": [{"name": "A", "need": 0}]}, "need is 1 to 5"),
        ({"stages": [{"name": f"S{i}"} for i in range(4)]}, "at most 3"),
        ({"stages": [{"name": "A", "approvers": ["dba"]}]}, "not a Slack user id"),
        ({"stages": [{"name": "A", "reviewers": ["U0X"]}]}, "reviewers"),
    ],
)
def test_bad_approval_stages_are_config_errors(approvals: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings(_config(approvals), {})
