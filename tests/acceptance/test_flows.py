"""Every on-demand user flow against the real `backupbot serve`, over the wire.

One installation per transport and state database (module-scoped `deployment`), set up
the way the README shows; each test drives it as people in the channel would and checks
what they would see, what the store holds and what the incident log says.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import create_engine, text

from backupbot.commands.drill_model import scratch_name
from backupbot.devkit.manual_restore import restore_by_hand
from backupbot.devkit.sample_data import database_fingerprint
from backupbot.devkit.slack_standin import PostedMessage
from tests.acceptance.harness import REQUESTER, REVIEWER, Deployment

BACKUP_ID = re.compile(r"\b[0-9a-f]{8}\b")


def _text(message: PostedMessage | dict[str, Any]) -> str:
    """Everything a person could read in a message: its text and its blocks."""
    if isinstance(message, PostedMessage):
        return message.text + json.dumps(message.blocks)
    return str(message.get("text", "")) + json.dumps(message.get("blocks", []))


def _source_url(dep: Deployment) -> str:
    return dep.exported["APP_DATABASE_URL"]


def _backup_id(text: str) -> str:
    found = BACKUP_ID.search(text)
    assert found, f"no backup id in {text!r}"
    return found.group()


def backup_now(dep: Deployment, user: str = REQUESTER, args: str = "app") -> PostedMessage:
    """`/backup now ARGS`; the channel message once it shows the backup's outcome."""
    answer = dep.slash(user, f"now {args}")
    assert answer.status == 200
    backup_id = _backup_id(_text(answer.json()))  # the immediate answer names the backup
    return dep.wait_message(
        lambda m: backup_id in _text(m) and ("succeeded" in m.text or "failed" in m.text)
    )


def database_exists(pg: Any, name: str) -> bool:
    with psycopg.connect(pg.url()) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return found.fetchone() is not None


def _button(message: PostedMessage, action_id: str) -> str:
    """The value of the button `action_id` on `message`."""
    for block in message.blocks:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button on the message: {_text(message)}")


def _has_buttons(message: PostedMessage) -> bool:
    return any(b["type"] == "actions" for b in message.blocks)


def request_restore(dep: Deployment, args: str) -> tuple[PostedMessage, str]:
    """`/backup restore ARGS` as the requester: the request message and its restore id."""
    before = {m.ts for m in dep.standin.messages()}
    assert dep.slash(REQUESTER, f"restore {args}").status == 200
    request = dep.wait_message(
        lambda m: m.ts not in before and _has_buttons(m) and "restore_approve" in _text(m)
    )
    return request, _button(request, "restore_approve")


# -- /backup now -------------------------------------------------------------------------


def test_backup_now_updates_its_message_to_success_and_the_artifact_restores_identically(
    deployment: Deployment, pg: Any
) -> None:
    message = backup_now(deployment, args="app --label pre-deploy")

    assert "succeeded" in message.text, _text(message)
    assert message.history, "the message was posted as 'started' and updated in place"
    assert "started" in _text(message.history[0]).lower()
    backup_id = _backup_id(message.text)
    artifacts = sorted(deployment.store_dir.glob(f"app/*-{backup_id}.dump.zst"))
    assert len(artifacts) == 1
    manifest = json.loads(
        artifacts[0].with_name(f"{artifacts[0].name[:-9]}.manifest.json").read_text()
    )
    assert manifest["backup_id"] == backup_id and manifest["label"] == "pre-deploy"
    assert not [p for p in deployment.store_dir.rglob(".*") if p.is_file()], "no temp files left"

    target = pg.create_database(f"byhand_{backup_id}")
    restore_by_hand(artifacts[0], target)
    assert database_fingerprint(target) == database_fingerprint(_source_url(deployment))

    actions = [i.action for i in deployment.incidents() if i.backup_id == backup_id]
    assert actions[:2] == ["backup.succeeded", "backup.started"]
    status = deployment.cli_json("status", "app")
    assert status[0]["last_success"]["id"] == backup_id


def test_a_mistyped_database_name_gets_a_suggestion_and_a_record(
    deployment: Deployment,
) -> None:
    answer = deployment.slash(REQUESTER, "now ap").json()
    assert "Did you mean app?" in answer["text"]  # the fallback: plain text
    rejected = deployment.incidents()[0]
    assert rejected.action == "command.rejected" and rejected.actor == REQUESTER


def test_every_refusal_is_answered_and_recorded_once_in_slack_and_on_the_cli(
    deployment: Deployment,
) -> None:
    """Refusals raised by the parser, by a handler and by a service: each gets one answer
    and exactly one record, whichever front end and whichever check refused it."""
    answer = deployment.slash(REQUESTER, "status --bogus").json()["text"]
    assert "Unknown option --bogus." in answer and "/backup status [db]" in answer
    deployment.slash(REQUESTER, "restore app nosuchid --reason test")
    refused = deployment.wait_response(lambda p: "nosuchid" in json.dumps(p.body))
    assert "nosuchid" in refused.body["text"]
    deployment.wait_action("restore.refused", "app")

    cli = deployment.cli("restore", "run", "app", check=False)  # no --break-glass
    assert cli.returncode == 2 and "--break-glass" in cli.stderr
    cli = deployment.cli("drill", "nosuch", check=False)
    assert cli.returncode == 2 and "Configured: app." in cli.stderr

    records = deployment.incidents()
    mine = {"status --bogus", "restore run app", "drill nosuch"}  # the deployment is shared
    rejected = [
        i for i in records if i.action == "command.rejected" and i.details["command"] in mine
    ]
    assert [(i.actor, i.details["command"]) for i in reversed(rejected)] == [
        (REQUESTER, "status --bogus"),
        (rejected[1].actor, "restore run app"),
        (rejected[0].actor, "drill nosuch"),
    ]
    assert rejected[0].actor.startswith("cli:") and rejected[1].actor.startswith("cli:")
    assert [i.details["code"] for i in rejected] == ["usage.unknown_database", "usage", "usage"]
    restore_refusals = [
        i
        for i in records
        if i.action == "restore.refused" and i.details["command_reason"] == "test"
    ]
    assert len(restore_refusals) == 1  # recorded by the service, not again as rejected
    assert not [i for i in records if "nosuchid" in i.details.get("command", "")]


# -- status, log, help, retention --------------------------------------------------------


def test_status_log_help_and_retention_answer_the_person_who_asked(deployment: Deployment) -> None:
    done = backup_now(deployment)
    backup_id = _backup_id(done.text)

    help_text = deployment.slash(REQUESTER, "help").json()["text"]
    for sub in ("now", "restore", "status", "drill", "retention", "log", "help"):
        assert f"/backup {sub}" in help_text

    for command, expect in (
        ("status", backup_id),
        ("log 5", "backup.succeeded"),
        ("retention", "would delete nothing"),
    ):
        before = len(deployment.standin.response_posts())
        assert deployment.slash(REVIEWER, command).status == 200
        post = deployment.wait_response(
            lambda p, b=before: deployment.standin.response_posts().index(p) >= b
        )
        assert expect in _text(post.body), (command, _text(post.body))


# -- restores ----------------------------------------------------------------------------


def test_a_restore_a_second_person_approves_gives_an_identical_database(
    deployment: Deployment, pg: Any
) -> None:
    backup_now(deployment)
    target = f"copy_{deployment.transport}_{deployment.state_kind}"
    pg.drop_database(target)
    request, restore_id = request_restore(
        deployment, f"app latest --into {target} --reason 'check bad deploy'"
    )
    assert "check bad deploy" in _text(request)

    own = deployment.click_answer(REQUESTER, "restore_approve", restore_id, request.ts)
    assert "cannot approve" in own, own  # not their own request
    deployment.click(REVIEWER, "restore_approve", restore_id, request.ts)

    final = deployment.wait_message(
        lambda m: m.ts == request.ts and "Restored and verified" in _text(m)
    )
    assert not _has_buttons(final)
    assert database_fingerprint(pg.url(target)) == database_fingerprint(_source_url(deployment))
    report = [
        m
        for m in deployment.standin.thread(request.channel, request.ts)
        if "Recovered in" in m.text
    ]
    assert len(report) == 1
    actions = [
        i.action for i in deployment.incidents() if i.details.get("restore_id") == restore_id
    ]
    assert "restore.succeeded" in actions and "restore.approved" in actions
    assert "restore.click_refused" in actions


def test_a_denied_restore_and_a_cancelled_one_restore_nothing(
    deployment: Deployment, pg: Any
) -> None:
    backup_now(deployment)
    for action, who, shown, recorded in (
        ("restore_deny", REVIEWER, "Denied", "restore.denied"),
        ("restore_cancel", REQUESTER, "Cancelled", "restore.cancelled"),
    ):
        target = f"never_{action}_{deployment.transport}_{deployment.state_kind}"
        pg.drop_database(target)
        request, restore_id = request_restore(deployment, f"app latest --into {target}")
        deployment.click(who, action, _button(request, action), request.ts)
        final = deployment.wait_message(
            lambda m, r=request, s=shown: m.ts == r.ts and s in _text(m)
        )
        assert not _has_buttons(final) and "Nothing was restored" in _text(final)
        assert not database_exists(pg, target)
        deployment.wait_incident(
            lambda i, r=restore_id, a=recorded: i.action == a and i.details.get("restore_id") == r
        )


def test_an_expired_request_cannot_be_approved(deployment: Deployment, pg: Any) -> None:
    backup_now(deployment)
    target = f"late_{deployment.transport}_{deployment.state_kind}"
    request, restore_id = request_restore(deployment, f"app latest --into {target}")
    # The approval window (30 min) passes: the request's deadline moves into the past.
    engine = create_engine(deployment.state_url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE restores SET expires_at = :t WHERE id = :id"),
            {"t": datetime.now(UTC) - timedelta(minutes=1), "id": restore_id},
        )
    engine.dispose()

    answer = deployment.click_answer(REVIEWER, "restore_approve", restore_id, request.ts)

    assert "expired" in answer
    final = deployment.wait_message(lambda m: m.ts == request.ts and "Expired" in _text(m))
    assert not _has_buttons(final)
    restore_actions = [
        i.action for i in deployment.incidents() if i.details.get("restore_id") == restore_id
    ]
    assert "restore.expired" in restore_actions and "restore.started" not in restore_actions


# -- drills ------------------------------------------------------------------------------


def test_a_drill_on_demand_passes_with_timings_and_leaves_no_scratch_database(
    deployment: Deployment, pg: Any
) -> None:
    backup_now(deployment)
    before = {m.ts for m in deployment.standin.messages()}
    deployment.slash(REQUESTER, "drill app")
    drill = deployment.wait_message(
        lambda m: m.ts not in before and m.text.startswith("Restore drill of app passed")
    )
    for stage in ("download", "restore", "verify"):
        assert stage in _text(drill).lower()
    [passed] = [i for i in deployment.incidents() if i.action == "drill.passed"][:1]
    scratch = scratch_name("app", passed.details["drill_id"])
    assert not database_exists(pg, scratch)
