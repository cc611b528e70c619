"""The review of break-glass restores against a real state database: who may review
(an approver other than the runner, once), what each refusal records, and the overdue
condition that escalation turns into an alert. The Slack side (the notice's button, the
alert) is tested through the serve process in tests/acceptance/test_escalation_rules.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backupbot.commands.access import Access, AccessRules, grants_from
from backupbot.commands.click_origin import ClickOrigin
from backupbot.commands.escalation_review import (
    REFUSED,
    REVIEW_OVERDUE,
    REVIEWED,
    BreakGlassReviews,
    review_of,
)
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.restores import NewRestore, RestoreRequests
from backupbot.storage.state import create_state_engine, migrate

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
RUNNER, APPROVER, OPERATOR = "U0ALICE", "U0APPR", "U0OPS"


class Directory:
    def members(self, group: str) -> frozenset[str]:
        return frozenset()

    def is_guest(self, user: str) -> bool:
        return False


@pytest.fixture
def parts(tmp_path: Path) -> tuple[RestoreRequests, IncidentLog, BreakGlassReviews]:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    rules = AccessRules(
        grants=grants_from({}, [APPROVER, RUNNER], None),
        default=None,
        channels=frozenset({"C0BACKUPS"}),
    )
    restores, incidents = RestoreRequests(engine), IncidentLog(engine)
    return restores, incidents, BreakGlassReviews(restores, incidents, Access(rules, None), 24)


def _restore(
    restores: RestoreRequests,
    target: str,
    *,
    break_glass: bool = True,
    before_reviews: bool = False,
) -> str:
    new = NewRestore(
        database="app",
        backup_id="b1",
        mode="into",
        target_db=target,
        target_where=f"127.0.0.1:5432/{target}",
        requester=RUNNER,
        reason="prod is down",
        required_approvals=0 if break_glass else 1,
        expires_at=T0 + timedelta(minutes=30),
        preview={} if before_reviews else {"review_required": break_glass},
        break_glass=break_glass,
    )
    record = restores.create(new, T0)
    restores.set_message(record.id, "C0BACKUPS", f"1.{target}")
    return record.id


def _refusals(incidents: IncidentLog) -> list[str]:
    return [str(i.details["code"]) for i in reversed(incidents.recent()) if i.action == REFUSED]


def test_only_an_approver_other_than_the_runner_reviews_and_only_once(
    parts: tuple[RestoreRequests, IncidentLog, BreakGlassReviews],
) -> None:
    restores, incidents, reviews = parts
    rid = _restore(restores, "app_fix")
    origin = ClickOrigin("C0BACKUPS", "1.app_fix")
    now = T0 + timedelta(hours=1)

    assert reviews.review(rid, RUNNER, now, origin).refusal is not None  # ran it
    assert reviews.review(rid, OPERATOR, now, origin).refusal is not None  # not an approver
    elsewhere = reviews.review(rid, APPROVER, now, ClickOrigin("C0BACKUPS", "9.9"))
    assert elsewhere.refusal is not None and "changed nothing" in str(elsewhere.refusal)
    assert review_of(restores.get(rid)) is None
    assert _refusals(incidents) == ["review.self", "review.role", "click.mismatch"]

    done = reviews.review(rid, APPROVER, now, origin)
    assert done.refusal is None
    reviewed = review_of(done.record)
    assert reviewed is not None and reviewed.user == APPROVER
    [record] = [i for i in incidents.recent() if i.action == REVIEWED]
    assert record.actor == APPROVER and record.details["restore_id"] == rid
    assert record.details["overdue"] is False and record.details["ran_by"] == RUNNER

    again = reviews.review(rid, APPROVER, now, origin)
    assert again.refusal is not None and "already reviewed" in str(again.refusal)
    assert _refusals(incidents)[-1] == "review.done"
    assert len([i for i in incidents.recent() if i.action == REVIEWED]) == 1


def test_an_approved_restore_needs_no_review(
    parts: tuple[RestoreRequests, IncidentLog, BreakGlassReviews],
) -> None:
    restores, incidents, reviews = parts
    rid = _restore(restores, "app_req", break_glass=False)
    result = reviews.review(rid, APPROVER, T0, ClickOrigin("C0BACKUPS", "1.app_req"))
    assert result.refusal is not None and restores.get(rid).approval_count == 0
    assert _refusals(incidents) == ["review.not_break_glass"]


def test_unreviewed_restores_are_overdue_after_the_window_until_reviewed(
    parts: tuple[RestoreRequests, IncidentLog, BreakGlassReviews],
) -> None:
    restores, _incidents, reviews = parts
    first = _restore(restores, "app_a")
    second = _restore(restores, "app_b")
    # made before reviews existed: no Reviewed button on its notice, never overdue
    _restore(restores, "app_old", before_reviews=True)
    assert reviews.check(T0 + timedelta(hours=23, minutes=59)) == []

    [finding] = reviews.check(T0 + timedelta(hours=24))
    assert finding.condition == REVIEW_OVERDUE and finding.database == "app"
    assert finding.details["restore_ids"] == [first, second]
    assert "not reviewed within 24 h" in str(finding.summary) and "1 more" in str(finding.summary)

    later = T0 + timedelta(hours=25)
    reviews.review(first, APPROVER, later)
    [finding] = reviews.check(later)
    assert finding.details["restore_ids"] == [second]
    reviews.review(second, APPROVER, later)
    assert reviews.check(later) == []
    resolution = reviews.resolution(REVIEW_OVERDUE, "app", later)
    assert resolution is not None and f"reviewed by {APPROVER}" in resolution
