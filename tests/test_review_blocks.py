"""The break-glass notice's review part and the re-page messages: what they say, and
that Slack would accept them (the stand-in's Block Kit checks)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

from backupbot.bot.slack.blocks import alert as alert_blocks
from backupbot.bot.slack.blocks.restore import break_glass_notice
from backupbot.commands.escalation_types import Repage
from backupbot.storage.restores import SUCCEEDED
from tests.test_escalation_ack import LEVELS, _alert
from tests.test_restore_blocks import assert_valid, in_state


def _buttons(blocks: list[dict[str, Any]]) -> list[str]:
    return [str(e["action_id"]) for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_the_notice_asks_for_a_review_until_one_is_given() -> None:
    r = in_state(
        SUCCEEDED,
        break_glass=True,
        decided_by="UALICE",
        required_approvals=0,
        approval_count=0,
        approvals=[],
    )
    due = r.created_at + timedelta(hours=24)
    asking = break_glass_notice(r, due)
    assert_valid(asking)
    body = json.dumps(asking.blocks)
    assert "Review required" in body and "other than <@UALICE>" in body
    assert "before 2024-05-02" in body and _buttons(asking.blocks) == ["restore_review"]

    reviewed = dataclasses.replace(
        r, approval_count=1, approvals=[{"user": "UBOB", "at": due.isoformat()}]
    )
    done = break_glass_notice(reviewed, due)
    assert_valid(done)
    assert "*Reviewed* by <@UBOB>" in json.dumps(done.blocks) and _buttons(done.blocks) == []


def test_a_lapsed_acknowledgement_shows_on_the_alert_and_in_its_thread() -> None:
    alert = dataclasses.replace(
        _alert(1),
        details={"reack": {"at": "2026-12-01T01:05:00+00:00", "acknowledged_by": "U0LEAD"}},
    )
    message = alert_blocks.alert_message(alert, LEVELS, timedelta(minutes=60))
    assert_valid(message)
    assert "unacknowledged" in json.dumps(message.blocks) and "unacknowledged again" in message.text
    assert _buttons(message.blocks) == [alert_blocks.ACK_ACTION]

    repage = Repage(alert, "U0LEAD", alert.opened_at, 60, "DevOps Lead", ("U0LEAD",), ("S0DBA",))
    note = alert_blocks.repage_message(repage)
    assert_valid(note)
    assert "Still failing 60 min after <@U0LEAD> acknowledged; paging again" in json.dumps(
        note.blocks
    )
    assert note.notify == ("U0LEAD", "S0DBA")
    assert_valid(alert_blocks.repage_dm(repage, "C0BACKUPS", None))
