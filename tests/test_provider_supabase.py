"""The Supabase adapter against the Supabase stand-in over real HTTP: the PITR window,
backups as points, an in-place restore that replaces the real database, followed
through the project's status."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backupbot.devkit.providers.standin import Fault
from backupbot.devkit.providers.supabase import SupabaseStandIn
from backupbot.devkit.sample_data import row_counts
from backupbot.errors import ProviderError
from backupbot.settings.providers import SupabaseSettings
from backupbot.storage.providers.http import ProviderHttp
from backupbot.storage.providers.supabase import SupabaseAdapter
from tests.provider_world import World, counts_at, follow, make_world

REF = "qwertyuiopasdfghjklz"


@pytest.fixture
def world(pg: Any) -> Iterator[World]:
    made = make_world(pg, "supabase")
    yield made
    made.drop_all()


@pytest.fixture
def standin(world: World) -> Iterator[SupabaseStandIn]:
    server = SupabaseStandIn(world.key, world.databases, project_ref=REF, database=world.live)
    yield server.start()
    server.close()


def adapter(world: World, standin: SupabaseStandIn, key: str | None = None) -> SupabaseAdapter:
    section = SupabaseSettings(api_url=standin.url, api_key=key or world.key, project_ref=REF)
    http = ProviderHttp(
        "supabase",
        section.api_url,
        {"Authorization": f"Bearer {section.api_key.get_secret_value()}"},
        sleep=world.sleeps.append,
    )
    return SupabaseAdapter(section, world.live_url, http)


def test_window_points_and_health(world: World, standin: SupabaseStandIn) -> None:
    supabase = adapter(world, standin)
    window = supabase.recovery_window()
    assert window.enabled and window.earliest == world.old_at
    assert window.latest is not None and abs(window.latest - datetime.now(UTC)) < timedelta(
        minutes=1
    )
    assert window.retention_days is not None and 0.08 < window.retention_days < 0.1
    points = supabase.recovery_points()
    assert [(p.id, p.created_at, p.status) for p in points] == [
        ("101", world.old_at, "completed"),
        ("102", world.new_at, "completed"),
    ]
    health = supabase.health()
    assert health.reachable and health.last_backup_at == world.new_at
    plan = supabase.plan("new")
    assert (
        plan.into == "in_place" and plan.needs_safety_dump and plan.supported_into == ("in_place",)
    )


def test_pitr_off_says_so(world: World, standin: SupabaseStandIn) -> None:
    standin.pitr_enabled = False
    supabase = adapter(world, standin)
    window = supabase.recovery_window()
    assert not window.enabled and window.reason is not None and "not enabled" in window.reason
    with pytest.raises(ProviderError) as caught:
        supabase.restore(to=world.new_at)
    assert caught.value.permanent and "PITR is not enabled" in str(caught.value)


def test_restore_pitr_replaces_the_database_in_place(
    world: World, standin: SupabaseStandIn
) -> None:
    supabase = adapter(world, standin)
    at = world.old_at + timedelta(minutes=10)
    started = supabase.restore(to=at, into="in_place")
    assert started.id.startswith(f"pitr-{int(at.timestamp())}-")
    done, seen = follow(supabase.operation_status, started)
    assert seen[0] == "running" and done.state == "succeeded"
    assert done.connection_url == world.live_url
    assert counts_at(done.connection_url) == world.old_counts
    post = next(r for r in standin.requests if r.method == "POST")
    assert post.body == {"recovery_time_target_unix": int(at.timestamp())}


def test_restore_a_backup_by_id(world: World, standin: SupabaseStandIn) -> None:
    supabase = adapter(world, standin)
    done, _ = follow(supabase.operation_status, supabase.restore(snapshot="101"))
    assert done.state == "succeeded" and row_counts(world.live_url) == world.old_counts


def test_new_is_refused_before_any_call(world: World, standin: SupabaseStandIn) -> None:
    with pytest.raises(ProviderError, match="only in place"):
        adapter(world, standin).restore(to=world.new_at, into="new")
    assert not [r for r in standin.requests if r.method == "POST"]


def test_a_failed_restore(world: World, standin: SupabaseStandIn) -> None:
    standin.fail_next_restore = True
    supabase = adapter(world, standin)
    done, _ = follow(supabase.operation_status, supabase.restore(to=world.new_at))
    assert done.state == "failed" and "RESTORE_FAILED" in (done.detail or "")
    assert done.connection_url is None
    assert row_counts(world.live_url) == world.new_counts


def test_429_waits_as_the_rate_limit_headers_say(world: World, standin: SupabaseStandIn) -> None:
    standin.inject(Fault(429, times=1, headers={"X-RateLimit-Reset": "3"}))
    standin.inject(Fault(429, times=1, headers={"Retry-After": "2"}))
    standin.inject(Fault(503, times=1))
    assert adapter(world, standin).recovery_window().enabled
    assert world.sleeps == [3.0, 2.0, 0.5 * 2**2]


def test_a_wrong_key_is_permanent_and_no_secret_leaks(
    world: World, standin: SupabaseStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "sbp_" + world.key
    with pytest.raises(ProviderError) as caught:
        adapter(world, standin, key=wrong).recovery_points()
    assert caught.value.permanent and caught.value.status == 401
    follow(
        adapter(world, standin).operation_status, adapter(world, standin).restore(to=world.new_at)
    )
    for secret in (wrong, world.key, world.pg.password):
        assert secret not in str(caught.value) and secret not in caplog.text


def test_healthy_before_the_restore_starts_is_not_success(
    world: World, standin: SupabaseStandIn
) -> None:
    standin.restoring_after_polls = 2  # Supabase is slow to switch the project's status
    supabase = adapter(world, standin)
    done, seen = follow(supabase.operation_status, supabase.restore(to=world.old_at))
    assert seen[:2] == ["running", "running"] and done.state == "succeeded"
    assert row_counts(world.live_url) == world.old_counts
