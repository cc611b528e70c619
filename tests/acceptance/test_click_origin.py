"""A signed click counts only when it came from the message the bot posted for what its
value names: a click on request A's message carrying request B's id, or one sent from
another channel, is refused with an answer only the clicker sees, recorded with code
`click.mismatch`, and changes nothing. The same holds for the checklist's controls and
an alert's Acknowledge button. Against the real `backupbot serve` over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from backupbot.devkit.botserver import free_port
from backupbot.devkit.slack_signer import SignedSlackClient
from backupbot.devkit.slack_standin import PostedMessage, SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import CHANNEL, LEAD, REVIEWER, WAIT, Deployment
from tests.acceptance.test_flows import (
    _button,
    _has_buttons,
    _text,
    backup_now,
    database_exists,
    request_restore,
)
from tests.conftest import wait_until

OTHER_CHANNEL = "C0ELSEWHERE"
SOON = "*/4 * * * * *"


@pytest.fixture(scope="module")
def dep(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """HTTP, SQLite state: `app`, and `legacy` on a dead server whose backups fail every
    few seconds (an alert), with the monthly checklist posted at once."""
    url, _counts = source_database(pg)
    dead = f"postgresql://backupbot@127.0.0.1:{free_port()}/legacy"
    with SlackStandin() as standin:
        deployment = fresh_deployment(
            ("http", "sqlite"),
            pg,
            standin,
            tmp_path_factory.mktemp("origin"),
            databases={"app": url, "legacy": dead},
            extra={"schedules": {"checklist": SOON}},
        )
        deployment.config["databases"][1]["schedule"] = SOON
        deployment.start()
        yield deployment
        deployment.close()


def _answer_from(
    dep: Deployment, user: str, action_id: str, value: str, channel: str, ts: str
) -> str:
    """Click a button (as `user`, in `channel`, on message `ts`); the private answer."""
    url = dep.standin.new_response_url()
    client = dep.client()
    assert isinstance(client, SignedSlackClient)
    assert client.block_action(user, action_id, value, channel, ts, response_url=url).status == 200
    post = dep.wait_response(lambda p: p.id == url.rsplit("/", 1)[-1])
    return str(post.body.get("text", ""))


def _row(dep: Deployment, table: str, row_id: str) -> Any:
    engine = create_engine(dep.state_url)
    with engine.connect() as conn:
        row = conn.execute(
            text(f"SELECT * FROM {table} WHERE id = :id"), {"id": row_id}
        ).one_or_none()
    engine.dispose()
    return row


def _restore_status(dep: Deployment, restore_id: str) -> str:
    return str(_row(dep, "restores", restore_id).status)


def _posted(dep: Deployment, table: str, row_id: str, ts: str) -> None:
    """Wait until the bot has stored that its message is `ts` (just after posting it; a
    click before that is refused as too early)."""
    assert wait_until(lambda: getattr(_row(dep, table, row_id), "message_ts", None) == ts, WAIT)


def _refusals(dep: Deployment, action: str, key: str, value: str) -> list[dict[str, Any]]:
    return [
        i.details
        for i in dep.incidents()
        if i.action == action and i.details.get(key) == value and i.outcome == "refused"
    ]


def test_a_click_on_one_request_s_message_naming_another_request_is_refused(
    dep: Deployment, pg: Any
) -> None:
    backup_now(dep)
    pg.drop_database("origin_a")
    pg.drop_database("origin_b")
    a, a_id = request_restore(dep, "app latest --into origin_a")
    b, b_id = request_restore(dep, "app latest --into origin_b")
    _posted(dep, "restores", a_id, a.ts)
    _posted(dep, "restores", b_id, b.ts)

    swapped = _answer_from(dep, REVIEWER, "restore_approve", b_id, CHANNEL, a.ts)
    elsewhere = _answer_from(dep, REVIEWER, "restore_approve", a_id, OTHER_CHANNEL, a.ts)

    for answer in (swapped, elsewhere):
        assert "not on the message the bot posted" in answer and "changed nothing" in answer
    [on_b] = _refusals(dep, "restore.click_refused", "restore_id", b_id)
    assert on_b["code"] == "click.mismatch" and on_b["clicked_ts"] == a.ts
    [on_a] = _refusals(dep, "restore.click_refused", "restore_id", a_id)
    assert on_a["code"] == "click.mismatch" and on_a["clicked_channel"] == OTHER_CHANNEL
    assert _restore_status(dep, a_id) == _restore_status(dep, b_id) == "pending"
    assert _has_buttons(dep.standin.message(CHANNEL, b.ts))
    assert not database_exists(pg, "origin_b")

    dep.click(REVIEWER, "restore_approve", a_id, a.ts)  # on its own message: it counts
    dep.wait_message(lambda m: m.ts == a.ts and "Restored and verified" in _text(m))
    assert _restore_status(dep, b_id) == "pending"


def _checklist(dep: Deployment) -> PostedMessage:
    message = dep.wait_message(lambda m: m.text.startswith("Backup verification checklist"))
    _posted(dep, "checklists", _button(message, "checklist_sign_off"), message.ts)
    return message


def _alert(dep: Deployment) -> PostedMessage:
    message = dep.wait_message(lambda m: m.text.startswith("Alert (legacy), open"))
    _posted(dep, "alerts", _button(message, "alert_ack"), message.ts)
    return message


def test_checklist_ticks_and_sign_off_from_another_message_are_refused(dep: Deployment) -> None:
    checklist = _checklist(dep)
    alert = _alert(dep)
    [actions] = [b for b in checklist.blocks if b["type"] == "actions"]
    [boxes] = [e for e in actions["elements"] if e["type"] == "checkboxes"]
    values = [o["value"] for o in boxes["options"]]
    client = dep.client()
    assert isinstance(client, SignedSlackClient)

    url = dep.standin.new_response_url()
    client.checkboxes_action(
        REVIEWER, boxes["action_id"], values, CHANNEL, alert.ts, actions["block_id"], url
    )
    ticked = dep.wait_response(lambda p: p.id == url.rsplit("/", 1)[-1])
    sign_off = _button(checklist, "checklist_sign_off")
    signed = _answer_from(dep, LEAD, "checklist_sign_off", sign_off, OTHER_CHANNEL, checklist.ts)

    assert "not on the message the bot posted" in str(ticked.body.get("text"))
    assert "not on the message the bot posted" in signed
    refusals = _refusals(dep, "access.denied", "checklist_id", sign_off)
    assert sorted(r["clicked"] for r in refusals) == ["sign_off", "tick"]
    assert {r["code"] for r in refusals} == {"click.mismatch"}
    actions_done = [i.action for i in dep.incidents() if i.details.get("checklist_id") == sign_off]
    assert "checklist.ticked" not in actions_done and "checklist.signed_off" not in actions_done
    shown = dep.standin.message(CHANNEL, checklist.ts)
    assert "signed off by" not in shown.text and _has_buttons(shown)


def test_an_acknowledge_click_from_another_message_is_refused_and_the_pings_go_on(
    dep: Deployment,
) -> None:
    alert = _alert(dep)
    checklist = _checklist(dep)
    alert_id = _button(alert, "alert_ack")

    answer = _answer_from(dep, LEAD, "alert_ack", alert_id, CHANNEL, checklist.ts)

    assert "not on the message the bot posted for this alert" in answer
    [refusal] = _refusals(dep, "access.denied", "alert_id", alert_id)
    assert refusal["code"] == "click.mismatch" and refusal["clicked_ts"] == checklist.ts
    assert "alert.acknowledged" not in dep.actions("legacy")
    assert _has_buttons(dep.standin.message(CHANNEL, alert.ts))

    dep.click(LEAD, "alert_ack", alert_id, alert.ts)  # on the alert's own message
    acked = dep.wait_message(lambda m: m.ts == alert.ts and "acknowledged" in m.text)
    assert not _has_buttons(acked)
    dep.wait_action("alert.acknowledged", "legacy")


def test_checklist_controls_on_their_own_message_still_work(dep: Deployment) -> None:
    checklist = _checklist(dep)
    [actions] = [b for b in checklist.blocks if b["type"] == "actions"]
    [boxes] = [e for e in actions["elements"] if e["type"] == "checkboxes"]
    values = [o["value"] for o in boxes["options"]]

    dep.tick(REVIEWER, boxes["action_id"], values[:2], checklist.ts, actions["block_id"])

    dep.wait_incident(
        lambda i: i.action == "checklist.ticked" and i.details.get("ticked") == values[:2]
    )
