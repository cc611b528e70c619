"""Operations done outside the bot, noted through the real serve, signed slash commands
and clicks, and the real CLI: the note is posted and recorded with its author; a staging
restore is confirmed by a second person only (the author's click is refused); `/backup log`
and `backupbot log` show notes; the monthly checklist counts the confirmed staging
restore as the test restore."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from backupbot.devkit.slack_standin import PostedMessage, SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import LEAD, REQUESTER, REVIEWER, Deployment
from tests.acceptance.test_flows import _button, _has_buttons, _text

EVERY_FEW_SECONDS = "*/4 * * * * *"
HOSTILE = "pg_restore of last night's backup into staging <!channel> & <https://evil|ok>"


@pytest.fixture(scope="module")
def dep(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    url, _counts = source_database(pg)
    with SlackStandin() as standin:
        deployment = fresh_deployment(
            ("http", "sqlite"),
            pg,
            standin,
            tmp_path_factory.mktemp("notes"),
            databases={"app": url},
        )
        deployment.start()
        yield deployment
        deployment.close()


def _note_message(dep: Deployment, note_id: str) -> PostedMessage:
    return dep.wait_message(lambda m: f"note `{note_id}`" in _text(m))


def _records(dep: Deployment, action: str, note_id: str) -> list[Any]:
    return [i for i in dep.incidents() if i.action == action and i.details["note_id"] == note_id]


def test_a_restore_done_elsewhere_is_noted_from_the_cli_with_its_author(
    dep: Deployment,
) -> None:
    out = dep.cli(
        "note", "app", "Restored", "from the Neon dashboard", "--kind", "restore", "--as", LEAD
    )
    note_id = out.stdout.strip()
    assert f"Noted {note_id} (restore) for app by {LEAD}" in out.stderr
    message = _note_message(dep, note_id)
    assert "Restored from the Neon dashboard" in _text(message)
    assert f"<@{LEAD}>" in _text(message) and not _has_buttons(message)
    [record] = _records(dep, "note.recorded", note_id)
    assert (record.actor, record.database, record.details["kind"]) == (LEAD, "app", "restore")
    assert record.details["text"] == "Restored from the Neon dashboard"
    assert record.details["via"].startswith("cli:")

    missing = dep.cli("note", "app", check=False)
    assert missing.returncode == 2 and "Say what was done" in missing.stderr
    too_long = dep.cli("note", "app", "x" * 2001, check=False)
    assert too_long.returncode == 2 and "keep it to 2000" in too_long.stderr
    not_a_user = dep.cli("note", "app", "done", "--as", "alice", check=False)
    assert not_a_user.returncode == 2 and "--as takes a Slack user id" in not_a_user.stderr


def test_a_staging_restore_is_noted_in_slack_and_confirmed_by_a_second_person(
    dep: Deployment,
) -> None:
    assert dep.slash(REQUESTER, f"note app staging-restore {HOSTILE}").status == 200
    answer = dep.wait_response(lambda p: "Noted" in str(p.body.get("text", "")))
    assert "posted in" in str(answer.body["text"])
    message = dep.wait_message(lambda m: m.text.startswith("Staging restore test on app"))
    note_id = _button(message, "note_confirm")
    shown = json.dumps(message.blocks)
    assert "&lt;!channel&gt; &amp; &lt;https://evil|ok&gt;" in shown and "<!channel>" not in shown
    [recorded] = _records(dep, "note.recorded", note_id)
    assert recorded.actor == REQUESTER and recorded.details["text"] == HOSTILE  # plain

    own = dep.click_answer(REQUESTER, "note_confirm", note_id, message.ts)
    assert "You wrote this note, so someone else confirms it" in own
    [refused] = _records(dep, "note.confirm_refused", note_id)
    assert refused.actor == REQUESTER and refused.details["code"] == "note.own"
    assert "note_confirm" in json.dumps(dep.standin.message(message.channel, message.ts).blocks)

    dep.click(REVIEWER, "note_confirm", note_id, message.ts)
    confirmed = dep.wait_message(lambda m: m.ts == message.ts and "Confirmed by" in _text(m))
    assert f"Confirmed by <@{REVIEWER}>" in _text(confirmed) and not _has_buttons(confirmed)
    record = dep.wait_incident(
        lambda i: i.action == "note.confirmed" and i.details["note_id"] == note_id
    )
    assert record.actor == REVIEWER and record.details["author"] == REQUESTER

    again = dep.click_answer(LEAD, "note_confirm", note_id, message.ts)
    assert "already confirmed this note" in again
    assert len(_records(dep, "note.confirmed", note_id)) == 1

    dep.slash(LEAD, "log 5")
    log = dep.wait_response(lambda p: "note.confirmed" in json.dumps(p.body))
    assert "staging-restore: pg_restore of last night" in json.dumps(log.body)
    cli_log = dep.cli("log", "--limit", "10").stdout
    assert f"note.recorded app ok staging-restore: {HOSTILE}" in cli_log
    assert f"note.confirmed app ok staging-restore note {note_id} by {REQUESTER}" in cli_log


def test_the_checklist_counts_the_confirmed_staging_restore_as_the_test_restore(
    dep: Deployment,
) -> None:
    """Runs last: serve restarts with the checklist due every few seconds."""
    dep.stop()
    dep.config["schedules"] = {"checklist": EVERY_FEW_SECONDS}
    dep.start()
    checklist = dep.wait_message(lambda m: m.text.startswith("Backup verification checklist"))
    shown = _text(checklist)
    assert f"staging restore noted by <@{REQUESTER}>, confirmed by <@{REVIEWER}>" in shown
    assert "no restore drill since" not in shown
    posted = dep.wait_action("checklist.posted")
    assert posted.details["items"]["drill"]["ok"] is True
