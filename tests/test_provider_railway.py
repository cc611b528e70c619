"""The Railway adapter against the Railway GraphQL stand-in over real HTTP: volume
backups and schedules, the volume looked up from environment and service, a backup
restored in place and a point in time restored into a new service (real databases),
workflows polled, GraphQL errors as ProviderErrors, the header by token kind."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backupbot.devkit.providers.railway import RailwayStandIn
from backupbot.devkit.providers.standin import Fault
from backupbot.devkit.sample_data import row_counts
from backupbot.errors import ProviderError
from backupbot.settings.providers import RailwaySettings
from backupbot.storage.providers.http import ProviderHttp
from backupbot.storage.providers.railway import RailwayAdapter, railway_headers
from tests.provider_world import World, counts_at, follow, make_world


@pytest.fixture
def world(pg: Any) -> Iterator[World]:
    made = make_world(pg, "railway")
    yield made
    made.drop_all()


@pytest.fixture
def standin(world: World) -> Iterator[RailwayStandIn]:
    server = RailwayStandIn(world.key, world.databases, database=world.live)
    yield server.start()
    server.close()


def adapter(world: World, standin: RailwayStandIn, **fields: Any) -> RailwayAdapter:
    values = {"api_url": standin.url, "api_key": world.key, "volume_instance_id": "vi-0000-main"}
    section = RailwaySettings(**{**values, **fields})
    http = ProviderHttp(
        "railway", section.api_url, railway_headers(section), sleep=world.sleeps.append
    )
    return RailwayAdapter(section, world.live_url, http)


def test_points_schedules_window_and_health(world: World, standin: RailwayStandIn) -> None:
    railway = adapter(world, standin)
    points = railway.recovery_points()
    assert [(p.id, p.created_at) for p in points] == [
        ("bkp-0001", world.old_at),
        ("bkp-0002", world.new_at),
    ]
    window = railway.recovery_window()
    assert window.enabled and window.retention_days == 6 and window.earliest is None
    assert any("does not say" in note for note in window.notes)
    health = railway.health()
    assert health.automated_backups and health.last_backup_at == world.new_at
    assert health.detail is not None and "DAILY" in health.detail


def test_the_volume_is_found_from_environment_and_service(
    world: World, standin: RailwayStandIn
) -> None:
    railway = adapter(
        world,
        standin,
        volume_instance_id=None,
        environment_id="env-0000-prod",
        service_id="svc-0000-postgres",
    )
    assert railway.volume_instance_id() == "vi-0000-main"
    missing = adapter(
        world,
        standin,
        volume_instance_id=None,
        environment_id="env-0000-prod",
        service_id="svc-other",
    )
    with pytest.raises(ProviderError, match="has no volume"):
        missing.recovery_points()


def test_pitr_creates_a_new_service_with_the_data_of_the_time(
    world: World, standin: RailwayStandIn
) -> None:
    railway = adapter(world, standin)
    started = railway.restore(to=world.old_at + timedelta(minutes=5), name="pg-rescue")
    done, seen = follow(railway.operation_status, started)
    assert seen[0] == "running" and done.state == "succeeded"
    assert done.result_name == "service pg-rescue"
    assert counts_at(done.connection_url) == world.old_counts
    assert row_counts(world.live_url) == world.new_counts
    mutation = next(r.body for r in standin.requests if "mutation" in r.body["query"])
    assert mutation["variables"]["targetTimestamp"].endswith("Z")


def test_a_backup_restores_in_place(world: World, standin: RailwayStandIn) -> None:
    railway = adapter(world, standin)
    with pytest.raises(ProviderError, match="in place only"):
        railway.restore(snapshot="bkp-0001", into="new")
    done, _ = follow(
        railway.operation_status, railway.restore(snapshot="bkp-0001", into="in_place")
    )
    assert done.state == "succeeded" and done.connection_url == world.live_url
    assert row_counts(world.live_url) == world.old_counts
    assert railway.plan("in_place").needs_safety_dump


def test_a_failed_workflow(world: World, standin: RailwayStandIn) -> None:
    standin.fail_next_restore = True
    railway = adapter(world, standin)
    done, _ = follow(railway.operation_status, railway.restore(to=world.new_at))
    assert done.state == "failed" and "Error" in (done.detail or "")
    assert railway.operation_status("pitr:no-such-workflow:x").state == "failed"


@pytest.mark.parametrize("kind", ["project", "team", "account"])
def test_the_header_follows_the_token_kind(world: World, pg: Any, kind: str) -> None:
    server = RailwayStandIn(world.key, world.databases, database=world.live, token_kind=kind)
    server.start()
    try:
        assert adapter(world, server, token_kind=kind).recovery_points()
        other = {"project": "team", "team": "account", "account": "project"}[kind]
        with pytest.raises(ProviderError, match="Not Authorized") as caught:
            adapter(world, server, token_kind=other).recovery_points()
        assert caught.value.permanent and world.key not in str(caught.value)
    finally:
        server.close()


def test_429_is_retried_and_a_rate_limit_error_is_not_permanent(
    world: World, standin: RailwayStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reset = int(datetime.now(UTC).timestamp()) + 3600  # Railway: a Unix time
    standin.inject(
        Fault(429, times=1, headers={"Retry-After": "5", "X-RateLimit-Reset": str(reset)})
    )
    assert adapter(world, standin).recovery_points()
    assert world.sleeps == [5.0]
    standin.inject(Fault(200, body={"errors": [{"message": "Rate limit exceeded"}]}))
    with pytest.raises(ProviderError) as caught:
        adapter(world, standin).recovery_points()
    assert not caught.value.permanent
    assert world.key not in caplog.text and world.pg.password not in caplog.text
