"""The scheduler of the real `backupbot serve` firing in real time: the daily backup,
retention, the monthly drill and checklist, and a backup of a dead server escalated.

The config gives every job a schedule with a seconds field that fires every few seconds
(`*/4 * * * * *`), so the test waits for the posted messages and records, never for a
fixed time. A dead server (`legacy`, a port nobody listens on) fails each of its runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backupbot.devkit.botserver import free_port
from backupbot.devkit.slack_standin import PostedMessage, SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import LEAD, REVIEWER, Deployment
from tests.acceptance.test_flows import _backup_id, _button, _has_buttons, _text

SOON = "*/4 * * * * *"  # every 4 seconds


@pytest.fixture
def scheduled(kind: tuple[str, str], pg: Any, tmp_path: Path) -> Iterator[Deployment]:
    url, _counts = source_database(pg)
    dead = f"postgresql://backupbot@127.0.0.1:{free_port()}/legacy"
    with SlackStandin() as standin:
        dep = fresh_deployment(
            kind,
            pg,
            standin,
            tmp_path / "deploy",
            databases={"app": url, "legacy": dead},
            extra={
                "schedules": {"retention": SOON, "drill": SOON, "checklist": SOON},
                "escalation": {
                    "levels": [{"name": "DevOps Lead", "after_minutes": 0, "mention": [LEAD]}]
                },
            },
        )
        for entry in dep.config["databases"]:
            entry["schedule"] = SOON
        dep.start()
        yield dep
        dep.close()


def _ticked(message: PostedMessage) -> int:
    """How many checklist items the message shows ticked."""
    return sum(
        len(e.get("initial_options") or [])
        for b in message.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["type"] == "checkboxes"
    )


def test_scheduled_jobs_fire_on_time_and_post_their_evidence(scheduled: Deployment) -> None:
    dep = scheduled
    backup = dep.wait_message(lambda m: m.text.startswith("Backup of app succeeded"))
    backup_id = _backup_id(backup.text)
    assert [i.actor for i in dep.incidents() if i.backup_id == backup_id][-1] == "scheduler"
    drill = dep.wait_message(lambda m: m.text.startswith("Restore drill of app passed"))
    assert "RTO" in drill.text
    dep.wait_action("retention.run")
    checklist = dep.wait_message(lambda m: m.text.startswith("Backup verification checklist"))

    # two people tick the five items (their ticks are merged), then the other signs off
    [actions] = [b for b in checklist.blocks if b["type"] == "actions"]
    [boxes] = [e for e in actions["elements"] if e["type"] == "checkboxes"]
    values = [o["value"] for o in boxes["options"]]
    assert len(values) == 5
    dep.tick(REVIEWER, boxes["action_id"], values[:3], checklist.ts, actions["block_id"])
    dep.wait_message(lambda m: m.ts == checklist.ts and _ticked(m) == 3)
    dep.tick(LEAD, boxes["action_id"], values, checklist.ts, actions["block_id"])
    dep.wait_message(lambda m: m.ts == checklist.ts and _ticked(m) == 5)
    sign_off = _button(checklist, "checklist_sign_off")
    dep.click(REVIEWER, "checklist_sign_off", sign_off, checklist.ts)
    # The dead `legacy` server makes an item need a look: signing off takes a reason,
    # asked for in a modal (a refusal is recorded until one is given).
    assert dep.standin.wait_for(lambda: bool(dep.standin.opened_modals()), 30)
    [modal] = dep.standin.opened_modals()
    assert "needs a look" in json.dumps(modal["blocks"])
    assert dep.wait_action("checklist.sign_off_refused").details["reason"] == "no_reason"
    short = dep.client().submit_view(REVIEWER, modal, {"reason": {"reason_text": " ok "}})
    assert short.json() == {
        "response_action": "errors",
        "errors": {"reason": "Say why, in a few words."},
    }
    assert not [i for i in dep.incidents() if i.action == "checklist.signed_off"]
    why = "legacy is being decommissioned <!channel>"
    dep.client().submit_view(REVIEWER, modal, {"reason": {"reason_text": why}})
    signed = dep.wait_message(lambda m: m.ts == checklist.ts and "signed off by" in m.text)
    assert REVIEWER in signed.text and not _has_buttons(signed)
    assert "legacy is being decommissioned &lt;!channel&gt;" in json.dumps(signed.blocks)
    record = dep.wait_action("checklist.signed_off")
    assert record.details["sign_off_reason"] == why and record.details["needs_look"]


def test_a_scheduled_backup_of_a_dead_server_alerts_escalates_and_is_acknowledged(
    scheduled: Deployment,
) -> None:
    dep = scheduled
    failed = dep.wait_message(lambda m: m.text.startswith("Backup of legacy failed"))
    assert "127.0.0.1" in failed.text  # says which server could not be reached
    alert = dep.wait_message(lambda m: m.text.startswith("Alert (legacy), open"))
    ping = dep.wait_message(lambda m: m.thread_ts == alert.ts and f"<@{LEAD}>" in _text(m))
    assert "DevOps Lead" in _text(ping)
    assert dep.standin.wait_for(lambda: bool(dep.standin.messages(LEAD)), 60), "a DM to the lead"

    dep.click(LEAD, "alert_ack", _button(alert, "alert_ack"), alert.ts)
    acked = dep.wait_message(lambda m: m.ts == alert.ts and "acknowledged" in m.text)
    assert not _has_buttons(acked) and LEAD in _text(acked)
    for action in ("backup.failed", "alert.opened", "alert.ping", "alert.acknowledged"):
        dep.wait_action(action, "legacy")
