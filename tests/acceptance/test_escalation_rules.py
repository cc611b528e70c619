"""Who may acknowledge an alert, the acknowledgement timeout, and the review of
break-glass restores, through the real `backupbot serve` process and the Slack stand-in.

A dead server (`legacy`, a port nobody listens on) fails its backup every few seconds:
that keeps an alert open and runs the alert step after each failure, so the tests move
time by backdating rows in the state database and wait for the step to notice (never
sleeping). Every refused click changes nothing and is recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, select, update

from backupbot.devkit.botserver import free_port
from backupbot.devkit.slack_standin import PostedMessage, SlackStandin
from backupbot.storage.models import AlertRow, RestoreRow
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import CHANNEL, LEAD, REQUESTER, REVIEWER, WAIT, Deployment
from tests.acceptance.test_flows import _button, _has_buttons, _text, backup_now
from tests.conftest import wait_until

SOON = "*/4 * * * * *"
DBA, ADMIN, DBA_GROUP = "U0DBA", "U0ADMIN", "S0DBA"
LEVELS = [
    {"name": "DevOps Lead", "after_minutes": 0, "mention": [LEAD]},
    {"name": "Database Admin", "after_minutes": 15, "mention": [DBA_GROUP]},
]


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(("http", "sqlite"), id="http-sqlite"),
        pytest.param(("socket", "postgresql"), id="socket-pg"),
    ],
)
def dep(
    request: pytest.FixtureRequest, pg: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    url, _counts = source_database(pg)
    dead = f"postgresql://backupbot@127.0.0.1:{free_port()}/legacy"
    with SlackStandin() as standin:
        standin.set_usergroup(DBA_GROUP, [DBA])
        deployment = fresh_deployment(
            request.param,
            pg,
            standin,
            tmp_path_factory.mktemp("escalation-rules"),
            databases={"app": url, "legacy": dead},
            extra={
                "escalation": {"levels": LEVELS, "reack_after_minutes": 60},
                "access": {"roles": {"admin": [ADMIN], "operator": [REQUESTER, LEAD, REVIEWER]}},
            },
        )
        deployment.config["databases"][1]["schedule"] = SOON
        deployment.start()
        yield deployment
        deployment.close()


# -- the state database, as the tests move time -----------------------------------------------


def _engine(dep: Deployment) -> Any:
    return create_engine(dep.state_url)


def _alert_row(dep: Deployment, alert_id: str) -> Any:
    engine = _engine(dep)
    with engine.connect() as conn:
        row = conn.execute(select(AlertRow).where(AlertRow.id == alert_id)).one()
    engine.dispose()
    return row


def _backdate(dep: Deployment, table: Any, row_id: str, columns: list[str], by: timedelta) -> None:
    """Move `columns` of one row `by` into the past (time passing, as the bot sees it)."""
    engine = _engine(dep)
    with engine.begin() as conn:
        row = conn.execute(select(table).where(table.id == row_id)).one()
        values = {c: getattr(row, c) - by for c in columns}
        conn.execute(update(table).where(table.id == row_id).values(**values))
    engine.dispose()


def _posted(dep: Deployment, table: Any, row_id: str, ts: str) -> None:
    """Wait until the bot has stored that its message is `ts`."""

    def stored() -> bool:
        engine = _engine(dep)
        with engine.connect() as conn:
            found = conn.execute(select(table.message_ts).where(table.id == row_id)).scalar()
        engine.dispose()
        return found == ts

    assert wait_until(stored, WAIT)


# -- Slack, as people use it -------------------------------------------------------------------


def _answer(dep: Deployment, user: str, action_id: str, value: str, ts: str) -> str:
    return dep.click_answer(user, action_id, value, ts)


def _thread_reply(dep: Deployment, ts: str, predicate: Callable[[PostedMessage], bool]) -> Any:
    return dep.wait_message(lambda m: m.thread_ts == ts and m.ts != ts and predicate(m))


def _replies(dep: Deployment, ts: str, words: str) -> list[PostedMessage]:
    return [m for m in dep.standin.thread(CHANNEL, ts) if m.ts != ts and words in _text(m)]


def _records(dep: Deployment, action: str, key: str, value: str) -> list[Any]:
    return [i for i in dep.incidents(500) if i.action == action and i.details.get(key) == value]


def _failures_after(dep: Deployment, at: datetime) -> int:
    return len([i for i in dep.incidents(500) if i.action == "backup.failed" and i.at > at])


def test_only_the_escalation_path_acknowledges_and_an_acknowledgement_lapses_once(
    dep: Deployment,
) -> None:
    alert = dep.wait_message(lambda m: m.text.startswith("Alert (legacy), open"))
    alert_id = _button(alert, "alert_ack")
    _posted(dep, AlertRow, alert_id, alert.ts)
    _thread_reply(dep, alert.ts, lambda m: "*DevOps Lead* (level 1 of 2" in _text(m))

    # An operator not on the path, and the DBA before their level fired: refused.
    for user in (REQUESTER, DBA):
        answer = _answer(dep, user, "alert_ack", alert_id, alert.ts)
        assert "not on this alert's escalation path so far" in answer
        assert f"now by @{LEAD} or an admin (@{ADMIN})" in answer and "keeps pinging" in answer
    denied = _records(dep, "access.denied", "alert_id", alert_id)
    assert sorted(r.actor for r in denied) == sorted([DBA, REQUESTER])
    assert {r.details["code"] for r in denied} == {"access.ack"}
    assert denied[0].details["may_acknowledge"] == [LEAD]
    assert _alert_row(dep, alert_id).acknowledged_by is None
    assert _has_buttons(dep.standin.message(CHANNEL, alert.ts))

    # 16 minutes later the Database Admin level fires: its group's members may.
    _backdate(dep, AlertRow, alert_id, ["opened_at"], timedelta(minutes=16))
    _thread_reply(dep, alert.ts, lambda m: "*Database Admin* (level 2 of 2" in _text(m))
    dep.click(DBA, "alert_ack", alert_id, alert.ts)
    dep.wait_message(lambda m: m.ts == alert.ts and "Alert (legacy), acknowledged" in m.text)
    # the message can show it a moment before the clicker's job has written the record
    acked = dep.wait_incident(
        lambda i: i.action == "alert.acknowledged" and i.details.get("alert_id") == alert_id
    )
    assert acked.actor == DBA

    # Still failing 61 minutes after the acknowledgement: it lapses and pages again, once.
    _backdate(dep, AlertRow, alert_id, ["acknowledged_at"], timedelta(minutes=61))
    note = _thread_reply(dep, alert.ts, lambda m: "Still failing" in _text(m))
    assert f"Still failing 61 min after <@{DBA}> acknowledged; paging again" in _text(note)
    assert f"<!subteam^{DBA_GROUP}>" in _text(note)
    shown = dep.wait_message(lambda m: m.ts == alert.ts and "unacknowledged" in _text(m))
    assert _has_buttons(shown)
    [reack] = [dep.wait_incident(lambda i: i.action == "alert.reack")]
    assert reack.details["acknowledged_by"] == DBA and reack.details["alert_id"] == alert_id
    assert dep.standin.wait_for(lambda: _failures_after(dep, reack.at) >= 2, WAIT)
    assert len(_records(dep, "alert.reack", "alert_id", alert_id)) == 1
    assert len(_replies(dep, alert.ts, "Still failing")) == 1
    assert _alert_row(dep, alert_id).acknowledged_by is None

    # Acknowledging again restarts the timer.
    dep.click(DBA, "alert_ack", alert_id, alert.ts)
    dep.wait_message(lambda m: m.ts == alert.ts and "Alert (legacy), acknowledged" in m.text)
    assert wait_until(
        lambda: len(_records(dep, "alert.acknowledged", "alert_id", alert_id)) == 2, WAIT
    )
    assert _alert_row(dep, alert_id).acknowledged_by == DBA


def test_a_break_glass_restore_is_reviewed_once_by_an_approver_and_escalates_when_overdue(
    dep: Deployment, pg: Any
) -> None:
    backup_now(dep)
    target = f"bg_{dep.state_kind}"
    pg.drop_database(target)
    ran = dep.cli("restore", "run", "app", "--into", target, "--break-glass", "--reason", "down")
    restore_id = ran.stdout.strip().splitlines()[-1]
    notice = dep.wait_message(
        lambda m: m.text.startswith("Break-glass restore") and restore_id in _text(m)
    )
    assert "Review required" in _text(notice)
    assert _button(notice, "restore_review") == restore_id
    _posted(dep, RestoreRow, restore_id, notice.ts)

    # Not an approver: refused, recorded, nothing changes.
    answer = _answer(dep, LEAD, "restore_review", restore_id, notice.ts)
    assert "needs the approver role" in answer and f"@{REVIEWER}" in answer
    [refused] = _records(dep, "restore.review_refused", "restore_id", restore_id)
    assert refused.actor == LEAD and refused.details["code"] == "review.role"
    assert _records(dep, "restore.reviewed", "restore_id", restore_id) == []

    # 25 hours later, not reviewed: an alert that escalates.
    _backdate(dep, RestoreRow, restore_id, ["created_at", "started_at"], timedelta(hours=25))
    alert = dep.wait_message(
        lambda m: m.text.startswith("Alert (app), open: Break-glass restore not reviewed")
    )
    assert restore_id in _text(alert) and "within 24 h" in _text(alert)
    _thread_reply(dep, alert.ts, lambda m: f"<@{LEAD}>" in _text(m))  # level 1 pinged
    [opened] = [
        i
        for i in _records(dep, "alert.opened", "condition", "restore.review_overdue")
        if i.database == "app"
    ]
    assert opened.details["evidence"]["restore_id"] == restore_id

    # An approver reviews it: the notice says so, the alert resolves.
    dep.click(REVIEWER, "restore_review", restore_id, notice.ts)
    reviewed = dep.wait_message(lambda m: m.ts == notice.ts and "*Reviewed* by <@" in _text(m))
    assert f"<@{REVIEWER}>" in _text(reviewed) and not _has_buttons(reviewed)
    [record] = [dep.wait_incident(lambda i: i.action == "restore.reviewed")]
    assert record.actor == REVIEWER and record.details["overdue"] is True
    resolved = dep.wait_message(lambda m: m.ts == alert.ts and "resolved" in m.text)
    assert f"reviewed by {REVIEWER}" in _text(resolved)

    # A second review (an admin, who may approve) is refused and recorded.
    again = _answer(dep, ADMIN, "restore_review", restore_id, notice.ts)
    assert "already reviewed" in again
    codes = [
        r.details["code"] for r in _records(dep, "restore.review_refused", "restore_id", restore_id)
    ]
    assert sorted(codes) == ["review.done", "review.role"]
    assert len(_records(dep, "restore.reviewed", "restore_id", restore_id)) == 1
