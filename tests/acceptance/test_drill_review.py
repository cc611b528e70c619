"""A person reviews a restore drill's result, through the real serve and signed clicks:
not whoever started it, once, from the drill's own message; `/backup status` names the
reviewer (the runbook's "Tested:" line)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from backupbot.devkit.slack_standin import PostedMessage, SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import LEAD, REQUESTER, REVIEWER, Deployment
from tests.acceptance.test_flows import _button, backup_now


@pytest.fixture(scope="module")
def dep(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    url, _counts = source_database(pg)
    with SlackStandin() as standin:
        deployment = fresh_deployment(
            ("http", "sqlite"),
            pg,
            standin,
            tmp_path_factory.mktemp("drill-review"),
            databases={"app": url},
        )
        deployment.start()
        yield deployment
        deployment.close()


def _text(message: PostedMessage) -> str:
    return message.text + json.dumps(message.blocks)


def _review_records(dep: Deployment, action: str, drill_id: str) -> list[Any]:
    return [i for i in dep.incidents() if i.action == action and i.details["drill_id"] == drill_id]


def test_a_drill_result_is_reviewed_once_by_someone_other_than_its_starter(
    dep: Deployment,
) -> None:
    backup_now(dep)
    dep.slash(REQUESTER, "drill app")
    drill = dep.wait_message(lambda m: m.text.startswith("Restore drill of app passed"))
    drill_id = _button(drill, "drill_review")

    own = dep.click_answer(REQUESTER, "drill_review", drill_id, drill.ts)
    assert "You started this drill, so someone else reviews its result" in own
    [refused] = _review_records(dep, "drill.review_refused", drill_id)
    assert refused.actor == REQUESTER
    assert "drill_review" in json.dumps(dep.standin.message(drill.channel, drill.ts).blocks)

    dep.click(REVIEWER, "drill_review", drill_id, drill.ts)
    reviewed = dep.wait_message(lambda m: m.ts == drill.ts and "Result reviewed by" in _text(m))
    assert f"<@{REVIEWER}>" in _text(reviewed) and "drill_review" not in json.dumps(reviewed.blocks)
    record = dep.wait_incident(
        lambda i: i.action == "drill.reviewed" and i.details["drill_id"] == drill_id
    )
    assert record.actor == REVIEWER and record.details["result"] == "passed"

    again = dep.click_answer(LEAD, "drill_review", drill_id, drill.ts)
    assert "already reviewed this drill" in again
    assert len(_review_records(dep, "drill.reviewed", drill_id)) == 1

    # the RTO record: `/backup status`, `backupbot status` and `report rto` name the reviewer
    tested = f"{record.at.astimezone(UTC):%Y-%m-%d}"
    dep.slash(REQUESTER, "status app")
    status = dep.wait_response(lambda p: "RTO: target" in json.dumps(p.body, ensure_ascii=False))
    shown = json.dumps(status.body, ensure_ascii=False)
    assert f"*Restore drills*\\nRTO: target 30 min · tested {tested} · Pass · " in shown
    assert f" · reviewed by <@{REVIEWER}>" in shown and "*RTO trend (last 6 drills)*" in shown
    assert "Last restore drill" not in shown  # the line replaces the old bits
    cli_status = dep.cli("status", "app").stdout
    assert f"  RTO: target 30 min · tested {tested} · Pass · " in cli_status
    assert f" · reviewed by {REVIEWER}\n" in cli_status
    report = dep.cli_json("report", "rto", "--database", "app")
    [row] = [r for r in report["drills"] if r["drill_id"] == drill_id]
    assert (row["result"], row["within_target"], row["reviewed_by"]) == ("Pass", True, REVIEWER)
    assert datetime.fromisoformat(row["reviewed_at"]) == record.at


def test_a_scheduled_drill_is_postponed_from_slack_and_recorded(dep: Deployment) -> None:
    answer = dep.slash(REQUESTER, "drill postpone app 3d").json()["text"]
    assert "The scheduled restore drill of app at" in answer and "now runs at" in answer
    record = dep.wait_action("drill.postponed", "app")
    assert record.actor == REQUESTER
    again = dep.slash(LEAD, "drill postpone app 2d").json()["text"]
    assert "postponed already" in again
    refused = dep.wait_incident(lambda i: i.action == "command.rejected" and i.actor == LEAD)
    assert "postponed already" in refused.details["reason"]
    out = dep.cli("postpone", "app", "20d", check=False)
    assert out.returncode == 2 and "Postpone by 1d to 14d" in out.stderr
