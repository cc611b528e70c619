"""The App Home tab through the real `backupbot serve` (issue 14 item 2): Slack's
`app_home_opened` event (signed HTTP event_callback, and an `events_api` envelope in Socket
Mode) publishes the viewer's Home view through the stand-in's `views.publish`; its buttons
back up for real, answer with the restore command, and are hidden from (and refused to) a
viewer; any number of databases stays within Block Kit's 100 blocks of a view."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backupbot.bot.slack.blocks import home
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REQUESTER, WAIT, Deployment

ADMIN, VIEWER = "U0ADMIN", "U0VERA"


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(("http", "sqlite"), id="http-sqlite"),
        pytest.param(("socket", "postgresql"), id="socket-pg"),
    ],
)
def homed(
    request: pytest.FixtureRequest, pg: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    url, _counts = source_database(pg)
    with SlackStandin() as standin:
        dep = fresh_deployment(
            request.param,
            pg,
            standin,
            tmp_path_factory.mktemp("home"),
            databases={"app": url},
            extra={"access": {"roles": {"admin": [ADMIN], "operator": [REQUESTER]}}},
        )
        dep.start()
        yield dep
        dep.close()


def open_home(dep: Deployment, user: str) -> dict[str, Any]:
    """`user` opens the Home tab; the view the bot publishes for it."""
    before = len(dep.standin.published_views(user))
    assert dep.client().app_home_opened(user).status == 200
    return _next_view(dep, user, before)


def _next_view(dep: Deployment, user: str, before: int) -> dict[str, Any]:
    published = dep.standin.wait_for(lambda: len(dep.standin.published_views(user)) > before, WAIT)
    assert published, "no Home view was published"
    return dep.standin.published_views(user)[-1]


def _click(dep: Deployment, user: str, view: dict[str, Any], action_id: str, value: str) -> Any:
    before = len(dep.standin.published_views(user))
    assert dep.client().home_action(user, action_id, value, view).status == 200
    return _next_view(dep, user, before)


def _actions(view: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for block in view["blocks"]:
        elements = [block.get("accessory") or {}, *block.get("elements", [])]
        found |= {e["action_id"] for e in elements if isinstance(e, dict) and "action_id" in e}
    return found


def _text(view: dict[str, Any]) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def test_home_shows_the_database_and_its_back_up_button_backs_up(homed: Deployment) -> None:
    view = open_home(homed, REQUESTER)
    assert view["type"] == "home"
    assert {home.BACKUP_NOW_ACTION, home.RESTORE_ACTION} <= _actions(view)
    assert "*app*" in _text(view)

    after = _click(homed, REQUESTER, view, home.BACKUP_NOW_ACTION, "app")
    notice = _text(after)
    assert "started; progress and the result will appear in" in notice
    done = homed.wait_message(lambda m: "succeeded" in m.text and "app" in m.text)
    started = homed.wait_action("backup.succeeded", "app")
    assert started.actor == REQUESTER  # the clicker is the actor, as with /backup now
    backup_id = str(started.backup_id)
    assert backup_id in done.text

    again = open_home(homed, REQUESTER)
    assert backup_id in _text(again)  # "Last good backup" names it
    assert "Size and duration trend" in _text(again)  # the sparkline, once there is one

    restore = _click(homed, REQUESTER, again, home.RESTORE_ACTION, "restore")
    assert "/backup restore app latest" in _text(restore)


def test_a_viewer_sees_no_buttons_and_a_click_anyway_is_refused(homed: Deployment) -> None:
    view = open_home(homed, VIEWER)
    assert "*app*" in _text(view)  # a viewer sees every database
    assert not _actions(view) & {home.BACKUP_NOW_ACTION, home.RESTORE_ACTION}

    forged = {**view, "blocks": []}  # an old view, or a role since taken away
    after = _click(homed, VIEWER, forged, home.BACKUP_NOW_ACTION, "app")
    assert "This needs the operator role" in _text(after)
    denied = [i for i in homed.incidents() if i.action == "access.denied" and i.actor == VIEWER]
    assert denied and "home.backup_now" in denied[0].details["command"]
    assert not [i for i in homed.incidents() if i.action == "backup.started" and i.actor == VIEWER]


def test_many_databases_fit_in_one_view(pg: Any, tmp_path: Path) -> None:
    url, _counts = source_database(pg)
    names = [f"db{n:02d}" for n in range(45)]
    with SlackStandin() as standin:
        databases = dict.fromkeys(names, url)
        dep = fresh_deployment(
            ("http", "sqlite"), pg, standin, tmp_path / "deploy", databases=databases
        )
        dep.start()
        try:
            view = open_home(dep, REQUESTER)
        finally:
            dep.close()
    assert len(view["blocks"]) <= home.MAX_VIEW_BLOCKS
    text = _text(view)
    assert all(f"*{n}*" in text for n in names[: home.DETAILED])  # a section each
    assert all(f"`{n}`" in text for n in names[home.DETAILED :])  # one line each
    assert f"*{len(names) - home.DETAILED} more database(s)*" in text
