"""The Render adapter against the Render stand-in over real HTTP: the recovery window
(none on free plans), exports as points, a recovery that creates a new instance (a real
database) followed through its status, and the 10-minute rule checked before calling."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backupbot.devkit.providers.render import RenderStandIn
from backupbot.devkit.providers.standin import Fault
from backupbot.devkit.sample_data import row_counts
from backupbot.errors import ProviderError
from backupbot.settings.providers import RenderSettings
from backupbot.storage.providers.http import ProviderHttp
from backupbot.storage.providers.render import RenderAdapter
from tests.provider_world import World, counts_at, follow, make_world

PID = "dpg-main0000000000000-a"


@pytest.fixture
def world(pg: Any) -> Iterator[World]:
    made = make_world(pg, "render")
    yield made
    made.drop_all()


@pytest.fixture
def standin(world: World) -> Iterator[RenderStandIn]:
    server = RenderStandIn(world.key, world.databases, postgres_id=PID, database=world.live)
    yield server.start()
    server.close()


def adapter(world: World, standin: RenderStandIn, key: str | None = None) -> RenderAdapter:
    section = RenderSettings(api_url=standin.url, api_key=key or world.key, postgres_id=PID)
    http = ProviderHttp(
        "render",
        section.api_url,
        {"Authorization": f"Bearer {section.api_key.get_secret_value()}"},
        sleep=world.sleeps.append,
    )
    return RenderAdapter(section, world.live_url, http)


def test_window_points_and_health(world: World, standin: RenderStandIn) -> None:
    render = adapter(world, standin)
    window = render.recovery_window()
    assert window.enabled and window.earliest == world.old_at
    assert window.latest is not None
    assert abs(window.latest - (datetime.now(UTC) - timedelta(minutes=10))) < timedelta(minutes=1)
    assert any("10 minutes" in note for note in window.notes)
    assert [p.created_at for p in render.recovery_points()] == [world.old_at, world.new_at]
    assert render.health().automated_backups
    assert render.plan("in_place").supported_into == ("new",)


def test_a_free_plan_has_no_pitr_and_says_so(world: World, standin: RenderStandIn) -> None:
    standin.instances[PID]["plan"] = "free"
    window = adapter(world, standin).recovery_window()
    assert not window.enabled and window.reason is not None and "free" in window.reason
    assert adapter(world, standin).health().automated_backups is False


def test_recovery_creates_a_new_instance_with_the_data_of_the_time(
    world: World, standin: RenderStandIn
) -> None:
    render = adapter(world, standin)
    started = render.restore(to=world.old_at + timedelta(minutes=5), name="app-db-rescue")
    assert started.state == "running" and started.id != PID
    done, seen = follow(render.operation_status, started)
    assert seen.count("running") >= 2 and done.state == "succeeded"
    assert done.result_name is not None and "app-db-rescue" in done.result_name
    assert counts_at(done.connection_url) == world.old_counts
    assert row_counts(world.live_url) == world.new_counts  # the source is untouched
    post = next(r for r in standin.requests if r.method == "POST")
    assert post.body["restoreTime"].endswith("Z")


def test_within_ten_minutes_of_now_is_refused_before_calling(
    world: World, standin: RenderStandIn
) -> None:
    with pytest.raises(ProviderError, match="at least 10 minutes ago") as caught:
        adapter(world, standin).restore(to=datetime.now(UTC) - timedelta(minutes=5))
    assert caught.value.permanent
    assert not [r for r in standin.requests if r.method == "POST"]


def test_in_place_and_exports_are_refused(world: World, standin: RenderStandIn) -> None:
    render = adapter(world, standin)
    with pytest.raises(ProviderError, match="new instance only"):
        render.restore(to=world.old_at, into="in_place")
    with pytest.raises(ProviderError, match="exports are dump files"):
        render.restore(snapshot="exp-0001")


def test_a_failed_recovery(world: World, standin: RenderStandIn) -> None:
    standin.fail_next_restore = True
    render = adapter(world, standin)
    done, _ = follow(
        render.operation_status, render.restore(to=world.old_at + timedelta(minutes=1))
    )
    assert done.state == "failed" and "recovery_failed" in (done.detail or "")
    assert done.connection_url is None


def test_429_waits_as_asked(world: World, standin: RenderStandIn) -> None:
    standin.inject(Fault(429, times=1, headers={"Retry-After": "4", "Ratelimit-Reset": "9"}))
    standin.inject(Fault(429, times=1, headers={"Ratelimit-Reset": "6"}))
    assert adapter(world, standin).recovery_window().enabled
    assert world.sleeps == [4.0, 6.0]


def test_a_wrong_key_is_permanent_and_no_secret_leaks(
    world: World, standin: RenderStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "rnd_" + world.key
    with pytest.raises(ProviderError) as caught:
        adapter(world, standin, key=wrong).health()
    assert caught.value.permanent and caught.value.status == 401
    render = adapter(world, standin)
    done, _ = follow(
        render.operation_status, render.restore(to=world.old_at + timedelta(minutes=1))
    )
    assert world.pg.password not in repr(done)
    for secret in (wrong, world.key, world.pg.password):
        assert secret not in str(caught.value) and secret not in caplog.text
