"""Staged restore approvals over the wire: the real serve with a README-style
`approvals:` section (one of the DBA group, then all of the leads), the Slack
stand-in's user groups, signed clicks. Stages are taken in order, a person counts once,
the requester never counts, the request message shows who approved and who can still
approve, and the thread is reminded halfway to expiry and 5 minutes before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from backupbot.devkit.sample_data import database_fingerprint
from backupbot.devkit.slack_standin import PostedMessage, SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import CHANNEL, REQUESTER, Deployment
from tests.acceptance.test_flows import backup_now, request_restore

DBA, DBA_1, DBA_2 = "S0DBA", "U0DBAONE", "U0DBATWO"
LEAD_1, LEAD_2 = "U0LEADONE", "U0LEADTWO"


@pytest.fixture(scope="module")
def staged(
    pg: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Deployment, dict[str, int]]]:
    url, counts = source_database(pg)
    solo_url, _ = source_database(pg, "solo")
    with SlackStandin() as standin:
        standin.set_usergroup(DBA, [DBA_1, DBA_2])
        dep = fresh_deployment(
            ("http", "sqlite"),
            pg,
            standin,
            tmp_path_factory.mktemp("stages"),
            databases={"app": url, "solo": solo_url},
            extra={
                "approvals": {
                    "stages": [
                        {"name": "DBA", "approvers": [DBA]},
                        # The requester is listed too: all-of means everyone else.
                        {"name": "Leads", "approvers": [LEAD_1, LEAD_2, REQUESTER], "need": "all"},
                    ],
                    # Overwriting a protected database: only its owner is named, and the
                    # owner asking alone could never be approved.
                    "protected_in_place": [{"name": "Owner", "approvers": [REQUESTER]}],
                }
            },
        )
        for entry in dep.config["databases"]:
            entry["protected"] = entry["name"] == "solo"
        dep.start()
        yield dep, counts
        dep.close()


def _text(message: PostedMessage) -> str:
    return message.text + json.dumps(message.blocks)


def _refusal(dep: Deployment, user: str, restore_id: str) -> str:
    [record] = [
        i
        for i in dep.incidents()
        if i.action == "restore.click_refused"
        and i.actor == user
        and i.details.get("restore_id") == restore_id
    ][:1]
    return str(record.details["code"])


def test_stages_are_taken_in_order_and_each_person_counts_once(
    staged: tuple[Deployment, dict[str, int]], pg: Any
) -> None:
    dep, _counts = staged
    backup_now(dep)
    target = "stages_copy"
    pg.drop_database(target)
    request, restore_id = request_restore(dep, f"app latest --into {target} --reason audit")
    shown = _text(request)
    assert "0 of 3, in stages" in shown and "1. DBA: 0 of 1" in shown
    assert "2. Leads: 0 of all 2" in shown  # the requester does not count
    assert "<!subteam^S0DBA>" in shown and f"<@{LEAD_1}>" in shown

    early = dep.click_answer(LEAD_1, "restore_approve", restore_id, request.ts)
    assert "waiting for its DBA stage" in early
    assert _refusal(dep, LEAD_1, restore_id) == "stage"

    dep.click(DBA_1, "restore_approve", restore_id, request.ts)
    dep.wait_message(lambda m: m.ts == request.ts and "1 of 3, in stages" in _text(m))
    again = dep.click_answer(DBA_1, "restore_approve", restore_id, request.ts)
    assert "already approved" in again and _refusal(dep, DBA_1, restore_id) == "duplicate"
    late = dep.click_answer(DBA_2, "restore_approve", restore_id, request.ts)
    assert "DBA stage is already complete" in late

    dep.click(LEAD_1, "restore_approve", restore_id, request.ts)
    middle = dep.wait_message(lambda m: m.ts == request.ts and "2 of 3" in _text(m))
    assert f"can approve: <@{LEAD_2}>" in _text(middle)  # who is left, by name
    assert f"<@{LEAD_1}>" not in _text(middle).split("can approve:")[-1]
    dep.click(LEAD_2, "restore_approve", restore_id, request.ts)

    done = dep.wait_incident(
        lambda i: i.action == "restore.succeeded" and i.details.get("restore_id") == restore_id
    )
    assert done.details["restore_id"] == restore_id
    [approved] = [
        i
        for i in dep.incidents()
        if i.action == "restore.approved" and i.details.get("restore_id") == restore_id
    ]
    stages = [(a["user"], a["stage"]) for a in approved.details["approvals"]]
    assert stages == [(DBA_1, 0), (LEAD_1, 1), (LEAD_2, 1)]
    assert database_fingerprint(pg.url(target)) == database_fingerprint(
        dep.exported["APP_DATABASE_URL"]
    )


def test_a_request_nobody_could_approve_is_refused_before_it_is_made(
    staged: tuple[Deployment, dict[str, int]],
) -> None:
    dep, _counts = staged
    backup_now(dep, args="solo")
    before = {m.ts for m in dep.standin.messages(CHANNEL)}
    dep.slash(REQUESTER, "restore solo latest --in-place --reason undo")
    try:
        answer = dep.wait_response(lambda p: "Nobody could approve" in str(p.body)).body["text"]
    except AssertionError:
        print("POSTS", [p.body.get("text") for p in dep.standin.response_posts()][-3:])
        raise
    assert "its Owner stage needs 1 approval(s) and names only 0 people besides you" in answer
    refused = dep.wait_action("restore.refused")
    assert refused.details["code"] == "restore.unapprovable"
    posted = [m for m in dep.standin.messages(CHANNEL) if m.ts not in before]
    assert not [m for m in posted if "restore_approve" in _text(m)]  # no request was posted


def _move_deadline(dep: Deployment, restore_id: str, created_ago: int, left: int) -> None:
    """Time passes: the request was made `created_ago` minutes ago, `left` remain."""
    now = datetime.now(UTC)
    engine = create_engine(dep.state_url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE restores SET created_at = :c, expires_at = :e WHERE id = :id"),
            {
                "c": now - timedelta(minutes=created_ago),
                "e": now + timedelta(minutes=left),
                "id": restore_id,
            },
        )
    engine.dispose()


def test_the_thread_is_reminded_halfway_and_five_minutes_before_expiry(
    staged: tuple[Deployment, dict[str, int]], pg: Any
) -> None:
    dep, _counts = staged
    backup_now(dep)
    target = "reminded_copy"
    pg.drop_database(target)
    request, restore_id = request_restore(dep, f"app latest --into {target}")

    def reminders() -> list[PostedMessage]:
        return [
            m
            for m in dep.standin.thread(CHANNEL, request.ts)
            if m.ts != request.ts and "Still waiting for approval" in _text(m)
        ]

    _move_deadline(dep, restore_id, created_ago=16, left=14)  # past halfway
    assert dep.standin.wait_for(lambda: len(reminders()) == 1, 60), dep.serve.log_text()[-2000:]
    [first] = reminders()
    assert "<!subteam^S0DBA>" in _text(first)  # the stage being waited for, pinged
    assert "expires in 13 min" in _text(first) or "expires in 14 min" in _text(first)

    _move_deadline(dep, restore_id, created_ago=26, left=4)  # 5 minutes before
    assert dep.standin.wait_for(lambda: len(reminders()) == 2, 60)
    reminded = [
        i
        for i in dep.incidents()
        if i.action == "restore.reminded" and i.details.get("restore_id") == restore_id
    ]
    assert len(reminded) == 2
    dep.click(REQUESTER, "restore_cancel", restore_id, request.ts)
    dep.wait_incident(
        lambda i: i.action == "restore.cancelled" and i.details.get("restore_id") == restore_id
    )
    assert len(reminders()) == 2  # no third: there are only two reminder times


def test_config_check_prints_the_stages(staged: tuple[Deployment, dict[str, int]]) -> None:
    dep, _counts = staged
    out = dep.cli("config", "check").stdout
    assert (
        f"every restore: 1. DBA: 1 of {DBA} → 2. Leads: all of {LEAD_1}, {LEAD_2}, {REQUESTER}"
    ) in out
    assert f"in place over a protected database: 1. Owner: 1 of {REQUESTER}" in out
    assert "nobody may approve" not in out  # every stage names its approvers
