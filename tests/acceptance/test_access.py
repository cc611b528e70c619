"""Access rules over the wire: the real serve, a README-style `access:` section, the
Slack stand-in's user groups and guests. A refused command is answered once, recorded
as `access.denied`, and starts nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from backupbot.devkit.slack_signer import SignedSlackClient, SocketModeSlackClient
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import CHANNEL, REQUESTER, WAIT, Deployment
from tests.acceptance.test_flows import request_restore

ADMIN, VIEWER, GUEST = "U0ADMIN", "U0VERA", "U0GUEST"
OPS = "S0OPS"


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(("http", "sqlite"), id="http-sqlite"),
        pytest.param(("socket", "postgresql"), id="socket-pg"),
    ],
)
def guarded(
    request: pytest.FixtureRequest, pg: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    url, _counts = source_database(pg)
    with SlackStandin() as standin:
        standin.set_usergroup(OPS, [REQUESTER, GUEST])
        standin.set_guest(GUEST)
        dep = fresh_deployment(
            request.param,
            pg,
            standin,
            tmp_path_factory.mktemp("access"),
            databases={"app": url},
            extra={"access": {"roles": {"admin": [ADMIN], "operator": [OPS]}}},
        )
        dep.config["slack"]["team_id"] = standin.team_id
        dep.start()
        yield dep
        dep.close()


def _denied(dep: Deployment, user: str) -> list[Any]:
    return [i for i in dep.incidents() if i.action == "access.denied" and i.actor == user]


def test_a_viewer_may_look_but_not_back_up(guarded: Deployment) -> None:
    answer = guarded.slash(VIEWER, "now app").json()["text"]
    assert answer.startswith("This needs the operator role; you have the viewer role.")
    assert "U0ADMIN" in answer and "@S0OPS" in answer  # who can, instead
    [record] = _denied(guarded, VIEWER)
    assert record.details["code"] == "access.role" and record.details["command"] == "now app"
    assert "backup.started" not in guarded.actions("app")

    guarded.slash(VIEWER, "status")
    status = guarded.wait_response(lambda p: "Backups kept" in str(p.body))
    assert "app" in status.body["text"]


def test_a_member_of_the_operator_group_backs_up(guarded: Deployment) -> None:
    guarded.slash(REQUESTER, "now app")
    done = guarded.wait_action("backup.succeeded", "app")
    assert done.actor == REQUESTER


def test_a_guest_is_a_viewer_whatever_the_groups_say(guarded: Deployment) -> None:
    answer = guarded.slash(GUEST, "drill app").json()["text"]
    assert "(guests are viewers at most)" in answer
    assert _denied(guarded, GUEST)[0].details["command"] == "drill app"
    assert not [i for i in guarded.incidents() if i.action.startswith("drill.")]


def test_commands_from_another_channel_or_workspace_are_refused(guarded: Deployment) -> None:
    elsewhere = guarded.client().slash_command(ADMIN, "status", channel_id="C0RANDOM").json()
    assert elsewhere["text"] == f"Use /backup in #{CHANNEL}; it is not taken from here."
    foreign = _client(guarded, team_id="T0FOREIGN").slash_command(
        ADMIN, "status", channel_id=CHANNEL
    )
    assert "does not take requests from this workspace" in foreign.json()["text"]
    codes = sorted(i.details["code"] for i in _denied(guarded, ADMIN))
    assert codes == ["access.channel", "access.workspace"]
    assert not [p for p in guarded.standin.response_posts() if "C0RANDOM" in str(p.body)]


def _client(dep: Deployment, team_id: str) -> SignedSlackClient | SocketModeSlackClient:
    if dep.transport == "socket":
        return SocketModeSlackClient(dep.standin, team_id=team_id, timeout=WAIT)
    assert dep.serve is not None
    secret = dep.exported["SLACK_SIGNING_SECRET"]
    return SignedSlackClient(dep.serve.events_url, secret, dep.standin, team_id, timeout=WAIT)


def test_config_check_prints_who_may_do_what(guarded: Deployment) -> None:
    out = guarded.cli("config", "check").stdout
    assert "admin: U0ADMIN" in out and "operator: S0OPS" in out
    assert "everyone else in the channel: viewer" in out


def test_approvers_are_the_approver_role_admins_included_and_never_a_viewer(
    guarded: Deployment, pg: Any
) -> None:
    guarded.slash(REQUESTER, "now app")
    guarded.wait_incident(lambda i: i.action == "backup.succeeded" and i.actor == REQUESTER)
    target = f"access_copy_{guarded.transport}"
    pg.drop_database(target)
    request, restore_id = request_restore(guarded, f"app latest --into {target} --reason why")

    refused = guarded.click_answer(VIEWER, "restore_approve", restore_id, request.ts)
    assert "not one of this channel's restore approvers" in refused
    assert guarded.wait_action("restore.click_refused").actor == VIEWER
    guarded.click(ADMIN, "restore_approve", restore_id, request.ts)  # admin > approver
    guarded.wait_incident(
        lambda i: i.action == "restore.succeeded" and i.details.get("restore_id") == restore_id
    )
    approvals = [i for i in guarded.incidents() if i.action == "restore.approved"]
    assert [i.actor for i in approvals] == [ADMIN]
