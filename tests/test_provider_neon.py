"""The Neon adapter against the Neon stand-in over real HTTP, with restores that
create real databases on the test cluster."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backupbot.devkit.providers.neon import NeonStandIn
from backupbot.devkit.providers.standin import Fault
from backupbot.devkit.sample_data import row_counts
from backupbot.errors import ProviderError
from backupbot.settings.providers import NeonSettings
from backupbot.storage.providers.http import ProviderHttp
from backupbot.storage.providers.neon import NeonAdapter
from tests.provider_world import World, counts_at, follow, make_world

PROJECT, BRANCH = "quiet-sky-123456", "br-main-000001"


@pytest.fixture
def world(pg: Any) -> Iterator[World]:
    made = make_world(pg, "neon")
    yield made
    made.drop_all()


@pytest.fixture
def standin(world: World) -> Iterator[NeonStandIn]:
    server = NeonStandIn(
        world.key, world.databases, project_id=PROJECT, branch_id=BRANCH, database=world.live
    ).start()
    yield server
    server.close()


def adapter(world: World, standin: NeonStandIn, key: str | None = None) -> NeonAdapter:
    section = NeonSettings(
        api_url=standin.url, api_key=key or world.key, project_id=PROJECT, branch_id=BRANCH
    )
    http = ProviderHttp(
        "neon",
        section.api_url,
        {"Authorization": f"Bearer {section.api_key.get_secret_value()}"},
        sleep=world.sleeps.append,
    )
    return NeonAdapter(section, world.live_url, http)


def test_window_and_points(world: World, standin: NeonStandIn) -> None:
    neon = adapter(world, standin)
    window = neon.recovery_window()
    assert window.enabled and window.retention_days == 7
    assert window.earliest is not None and window.latest is not None
    assert window.earliest.tzinfo is not None
    # the branch is younger than the retention: its creation bounds the window
    assert window.earliest == world.old_at - timedelta(hours=1)
    assert abs(window.latest - datetime.now(UTC)) < timedelta(minutes=1)
    points = neon.recovery_points()
    assert [p.created_at for p in points] == [
        world.old_at,
        world.new_at,
    ]
    assert neon.health().reachable and neon.health().automated_backups


def test_restore_to_a_time_into_a_new_branch(world: World, standin: NeonStandIn) -> None:
    neon = adapter(world, standin)
    started = neon.restore(to=world.old_at + timedelta(minutes=5), into="new", name="rescue")
    done, seen = follow(neon.operation_status, started)
    assert seen[0] == "running" and done.state == "succeeded"
    assert done.result_name is not None and done.result_name.startswith("rescue")
    assert counts_at(done.connection_url) == world.old_counts
    assert row_counts(world.live_url) == world.new_counts  # the current branch untouched
    body = next(r.body for r in standin.requests if r.method == "POST")
    assert body["branch"]["parent_id"] == BRANCH and body["endpoints"] == [{"type": "read_write"}]
    assert body["branch"]["parent_timestamp"].endswith("Z")


def test_restore_in_place_keeps_the_old_state_as_a_branch(
    world: World, standin: NeonStandIn
) -> None:
    neon = adapter(world, standin)
    started = neon.restore(to=world.old_at + timedelta(minutes=5), into="in_place", name="kept")
    done, _ = follow(neon.operation_status, started)
    assert done.state == "succeeded" and done.detail is not None and "kept" in done.detail
    assert row_counts(world.live_url) == world.old_counts
    kept_id = next(b for b, v in standin.branches.items() if v["name"] == "kept")
    assert row_counts(world.databases.url(standin.branch_db[kept_id])) == world.new_counts
    body = next(r.body for r in standin.requests if r.method == "POST")
    assert body["source_branch_id"] == BRANCH and body["preserve_under_name"] == "kept"


def test_restore_a_snapshot(world: World, standin: NeonStandIn) -> None:
    neon = adapter(world, standin)
    newest = neon.recovery_points()[-1]
    done, _ = follow(neon.operation_status, neon.restore(snapshot=newest.id))
    assert done.state == "succeeded"
    assert counts_at(done.connection_url) == world.new_counts


def test_a_failed_operation_says_so(world: World, standin: NeonStandIn) -> None:
    standin.fail_next_restore = True
    neon = adapter(world, standin)
    done, _ = follow(neon.operation_status, neon.restore(to=world.new_at, into="new"))
    assert done.state == "failed" and done.detail is not None and "failed" in done.detail
    assert done.connection_url is None


def test_outside_the_history_is_a_permanent_error(world: World, standin: NeonStandIn) -> None:
    with pytest.raises(ProviderError) as caught:
        adapter(world, standin).restore(to=datetime.now(UTC) - timedelta(days=30))
    assert caught.value.permanent and caught.value.status == 400
    assert "retention" in str(caught.value)


def test_429_and_423_are_retried_as_asked(world: World, standin: NeonStandIn) -> None:
    standin.inject(Fault(429, times=2, headers={"Retry-After": "7"}))
    standin.inject(Fault(423, times=1, method="POST"))
    neon = adapter(world, standin)
    assert neon.recovery_window().enabled
    assert world.sleeps == [7.0, 7.0]
    done, _ = follow(neon.operation_status, neon.restore(to=world.new_at))
    assert done.state == "succeeded"
    assert world.sleeps[2:] == [0.5]  # the 423 waited the base delay, then went through


def test_a_wrong_key_is_permanent_and_no_secret_leaks(
    world: World, standin: NeonStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + world.key
    with pytest.raises(ProviderError) as caught:
        adapter(world, standin, key=wrong).health()
    assert caught.value.permanent and caught.value.status == 401
    assert "api_key" in str(caught.value)
    neon = adapter(world, standin)
    done, _ = follow(neon.operation_status, neon.restore(to=world.new_at))
    assert world.pg.password in (done.connection_url or "")
    assert world.pg.password not in repr(done)
    for secret in (world.key, wrong, world.pg.password):
        assert secret not in str(caught.value)
        assert secret not in caplog.text
