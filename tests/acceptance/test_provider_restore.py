"""Restores through the provider (Neon's stand-in, run by this test and reached by the
real `backupbot serve` over HTTP at `api_url`): `/backup restore app --to … --tz …`
asks, a second person approves, the stand-in's API creates a real branch database on
the test cluster from a template, the bot follows the operation, connects to the result,
compares its row counts with the newest verified backup from before the point and
records it all; a point outside the window is refused before anything is posted; a
failed provider operation is a failed restore saying so; the CLI asks the same way, and
`points` lists the window, the snapshots and the bot's backups.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, select, update

from backupbot.devkit.providers.neon import NeonStandIn
from backupbot.devkit.sample_data import row_counts
from backupbot.devkit.slack_standin import SlackStandin
from backupbot.storage.models import BackupRow, RestoreRow
from tests.acceptance.conftest import fresh_deployment
from tests.acceptance.harness import CHANNEL, REQUESTER, REVIEWER, Deployment
from tests.acceptance.test_flows import _text, backup_now, request_restore
from tests.conftest import PG_PASSWORD
from tests.provider_world import World, make_world

PROJECT, BRANCH = "quiet-sky-123456", "br-main-000001"
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(scope="module")
def world(pg: Any) -> Iterator[World]:
    made = make_world(pg, "neonacc")
    yield made
    made.drop_all()


@pytest.fixture(scope="module")
def neon(world: World) -> Iterator[NeonStandIn]:
    server = NeonStandIn(
        world.key, world.databases, project_id=PROJECT, branch_id=BRANCH, database=world.live
    ).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def dep(
    pg: Any, world: World, neon: NeonStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """`app` is the Neon branch's database; the key is exported as NEON_API_KEY."""
    with SlackStandin() as standin:
        deployment = fresh_deployment(
            ("http", "sqlite"),
            pg,
            standin,
            tmp_path_factory.mktemp("provider-restore"),
            databases={"app": world.live_url},
        )
        deployment.config["databases"][0].update(
            provider="neon",
            neon={
                "api_url": neon.url,
                "api_key": "${NEON_API_KEY}",
                "project_id": PROJECT,
                "branch_id": BRANCH,
                "poll_seconds": 0.2,
            },
        )
        deployment.exported["NEON_API_KEY"] = world.key
        deployment.start()
        yield deployment
        deployment.close()


@pytest.fixture(scope="module")
def verified_backup(dep: Deployment, world: World) -> str:
    """A verified backup of `app` (as the newer snapshot), dated 5 minutes after that
    snapshot: the newest backup before the points the tests restore to."""
    message = backup_now(dep)
    assert "succeeded" in message.text, _text(message)
    found = re.search(r"\b[0-9a-f]{8}\b", message.text)
    assert found, message.text
    engine = create_engine(dep.state_url)
    with engine.begin() as conn:
        conn.execute(
            update(BackupRow)
            .where(BackupRow.id == found.group())
            .values(started_at=world.new_at + timedelta(minutes=5))
        )
    engine.dispose()
    return found.group()


def _restore_row(dep: Deployment, restore_id: str) -> Any:
    engine = create_engine(dep.state_url)
    with engine.connect() as conn:
        row = conn.execute(select(RestoreRow).where(RestoreRow.id == restore_id)).one()
    engine.dispose()
    return row


def _all_text(dep: Deployment) -> str:
    posted = [_text(m) for m in dep.standin.messages()]
    posted += [_text(h) for m in dep.standin.messages() for h in m.history]
    posted += [json.dumps(p.body) for p in dep.standin.response_posts()]
    return "\n".join(posted)


def _finished(dep: Deployment, ts: str) -> Any:
    return dep.wait_message(
        lambda m: (
            m.ts == ts and ("Restored by" in _text(m) or "Provider restore failed" in _text(m))
        )
    )


def test_a_point_in_time_restore_is_approved_done_by_the_provider_and_verified(
    dep: Deployment, world: World, neon: NeonStandIn, verified_backup: str
) -> None:
    point = (datetime.now(UTC) - timedelta(minutes=10)).replace(second=0, microsecond=0)
    local = point.astimezone(BERLIN)
    request, restore_id = request_restore(
        dep, f'app --to "{local:%Y-%m-%d %H:%M}" --tz Europe/Berlin --reason "bad deploy"'
    )
    shown = _text(request)
    assert "through Neon" in shown and "Recovery window" in shown, shown
    assert f"{point:%Y-%m-%d %H:%M} UTC" in shown, shown
    assert f"{local:%Y-%m-%d %H:%M}:00 {local.tzname()} (Europe/Berlin)" in shown, shown
    assert "keeps 7 days" in shown and "about 2 min" in shown, shown
    assert "a new branch is created at the point; the current branch is untouched" in shown
    assert f"compares row counts with backup `{verified_backup}`" in shown, shown
    assert not [r for r in neon.requests if r.method == "POST"], "nothing asked before approval"

    dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
    done = _finished(dep, request.ts)
    text = _text(done)
    assert "Restored by Neon and verified" in text, text
    assert any("the provider is restoring" in _text(h) for h in done.history), "progress shown"
    row = _restore_row(dep, restore_id)
    assert (row.status, row.source_kind, row.provider, row.provider_into) == (
        "succeeded",
        "provider",
        "neon",
        "new",
    )
    assert row.point_at == point and row.backup_id == ""
    assert row.operation_id and row.result_host == world.databases.host
    # The stand-in's API did it: a branch at the point, a real database made from the
    # snapshot at or before it, holding the newer snapshot's rows.
    created = next(r for r in neon.requests if r.method == "POST")
    assert created.body["branch"]["parent_timestamp"] == point.strftime("%Y-%m-%dT%H:%M:%SZ")
    branch_id = next(b for b, v in neon.branches.items() if v.get("parent_id") == BRANCH)
    assert row_counts(world.databases.url(neon.branch_db[branch_id])) == world.new_counts
    assert row.result_name == f"{row.target_db} ({branch_id})"
    assert row_counts(world.live_url) == world.new_counts  # the current branch untouched
    report = next(
        m for m in dep.standin.thread(CHANNEL, request.ts) if "Restored by Neon:" in _text(m)
    )
    assert f"Row counts match backup `{verified_backup}`" in _text(report), _text(report)
    assert f"host `{world.databases.host}`" in _text(report)
    succeeded = dep.wait_incident(
        lambda i: (
            i.action == "restore.provider_succeeded" and i.details.get("restore_id") == restore_id
        )
    )
    assert succeeded.details["operation_id"] == row.operation_id
    assert succeeded.details["compared_with"] == verified_backup
    assert succeeded.details["rows"] == sum(world.new_counts.values())
    actions = [i.action for i in dep.incidents() if i.details.get("restore_id") == restore_id]
    assert {"restore.requested", "restore.approved", "restore.provider_started"} <= set(actions)
    everything = _all_text(dep) + json.dumps([i.details for i in dep.incidents()])
    assert PG_PASSWORD not in everything and world.key not in everything


def test_a_point_outside_the_window_is_refused_before_anything_is_posted(
    dep: Deployment, neon: NeonStandIn
) -> None:
    before = {m.ts for m in dep.standin.messages()}
    posts = len(dep.standin.response_posts())
    assert dep.slash(REQUESTER, 'restore app --to "2026-01-01 10:00"').status == 200
    answer = dep.wait_response(lambda p: dep.standin.response_posts().index(p) >= posts)
    said = _text(answer.body)
    assert "is outside neon's recovery window for app" in said, said
    assert "/backup points app" in said
    refused = dep.wait_incident(
        lambda i: (
            i.action == "restore.refused" and i.details.get("code") == "restore.provider_refused"
        )
    )
    assert "2026-01-01 10:00 UTC" in refused.details["reason"]
    assert {m.ts for m in dep.standin.messages()} == before, "no request was posted"


def test_a_failed_provider_operation_is_a_failed_restore_that_says_why(
    dep: Deployment, neon: NeonStandIn, verified_backup: str
) -> None:
    point = datetime.now(UTC) - timedelta(minutes=5)
    request, restore_id = request_restore(dep, f'app --to "{point:%Y-%m-%d %H:%M}"')
    neon.fail_next_restore = True
    dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
    done = _finished(dep, request.ts)
    text = _text(done)
    assert "Provider restore failed" in text and "Restored by" not in text, text
    assert "Neon operation failed: the restore failed (injected)" in text, text
    assert "app was not touched" in text, text
    failed = dep.wait_incident(
        lambda i: (
            i.action == "restore.provider_failed" and i.details.get("restore_id") == restore_id
        )
    )
    assert failed.details["stage"] == "provider" and failed.details["operation_id"]
    assert not [
        i
        for i in dep.incidents()
        if i.action == "restore.provider_succeeded" and i.details.get("restore_id") == restore_id
    ]
    assert _restore_row(dep, restore_id).status == "failed"


def test_a_point_the_window_left_while_the_request_waited_is_refused_when_approved(
    dep: Deployment, neon: NeonStandIn, verified_backup: str
) -> None:
    """Requested inside the window; by the approval Neon keeps only 10 minutes of
    history: the restore fails saying so, and nothing is asked of Neon."""
    point = datetime.now(UTC) - timedelta(minutes=30)
    request, restore_id = request_restore(dep, f'app --to "{point:%Y-%m-%d %H:%M}"')
    kept, neon.history_retention_seconds = neon.history_retention_seconds, 600
    posts = len([r for r in neon.requests if r.method == "POST"])
    try:
        dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
        done = _finished(dep, request.ts)
    finally:
        neon.history_retention_seconds = kept
    text = _text(done)
    assert "Provider restore failed" in text and "Restored by" not in text, text
    assert "Since the request, " in text and "is outside neon's recovery window" in text, text
    assert "app was not touched" in text, text
    assert len([r for r in neon.requests if r.method == "POST"]) == posts, "Neon was not asked"
    failed = dep.wait_incident(
        lambda i: (
            i.action == "restore.provider_failed" and i.details.get("restore_id") == restore_id
        )
    )
    assert "recovery window" in failed.details["error"]
    assert _restore_row(dep, restore_id).status == "failed"


def test_the_cli_asks_the_same_way_and_points_lists_everything(
    dep: Deployment, world: World, neon: NeonStandIn, verified_backup: str, tmp_path: Path
) -> None:
    listed = dep.cli("points", "app").stdout
    assert "any moment" in listed and "provider PITR" in listed, listed
    assert "snap-0001" in listed and "snap-0002" in listed, listed
    assert f"{verified_backup} " in listed and "bot backup, verified" in listed, listed
    assert "backupbot restore request app --snapshot snap-0002" in listed, listed
    data = json.loads(dep.cli("points", "app", "--json").stdout)
    assert data["points"][0]["kind"] == "window"

    point = datetime.now(UTC) - timedelta(minutes=3)
    result = dep.cli(
        "restore", "request", "app", "--to", f"{point:%Y-%m-%dT%H:%M}Z",
        "--slack-user", "U0CLIUSER", "--json",
    )  # fmt: skip
    asked = json.loads(result.stdout)
    assert asked["source"] == "provider" and asked["provider"] == "neon", asked
    assert asked["point_at"] == point.replace(second=0, microsecond=0).isoformat()
    request = dep.wait_message(lambda m: asked["id"] in _text(m) and "through Neon" in _text(m))
    dep.click(REVIEWER, "restore_approve", asked["id"], request.ts)
    assert "Restored by Neon and verified" in _text(_finished(dep, request.ts))

    posts = len(dep.standin.response_posts())
    assert dep.slash(REVIEWER, "points app").status == 200
    answer = dep.wait_response(lambda p: dep.standin.response_posts().index(p) >= posts)
    said = _text(answer.body)
    assert "snap-0002" in said and verified_backup in said and "Any moment" in said, said
