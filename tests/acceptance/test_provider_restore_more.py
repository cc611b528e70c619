"""Provider restores of the other shapes, through the real `backupbot serve`: Supabase
restores in place (so the bot takes its own safety backup first, and the configured
database afterwards holds the point's data), Render recovers into a new instance (the
current one untouched), Railway restores a volume backup (`--snapshot`) in place after a
safety backup. Each stand-in runs in this test and creates real databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from backupbot.devkit.providers.railway import RailwayStandIn
from backupbot.devkit.providers.render import RenderStandIn
from backupbot.devkit.providers.standin import ProviderStandIn
from backupbot.devkit.providers.supabase import SupabaseStandIn
from backupbot.devkit.sample_data import row_counts
from backupbot.devkit.slack_standin import SlackStandin
from backupbot.storage.models import BackupRow, RestoreRow
from tests.acceptance.conftest import fresh_deployment
from tests.acceptance.harness import CHANNEL, REVIEWER, Deployment
from tests.acceptance.test_flows import _text, request_restore
from tests.acceptance.test_provider_restore import _finished
from tests.conftest import PG_PASSWORD
from tests.provider_world import World, make_world

REF, PID = "abcdefghijklmnopqrst", "dpg-main0000000000000-a"


@pytest.fixture
def world(pg: Any) -> Iterator[World]:
    made = make_world(pg, "provacc")
    yield made
    made.drop_all()


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    with SlackStandin() as standin:
        yield standin


def _deploy(
    pg: Any,
    world: World,
    slack: SlackStandin,
    standin: ProviderStandIn,
    tmp: Path,
    provider: str,
    section: Any,
) -> Deployment:
    """`app` is the provider's database; its API key is exported as PROVIDER_KEY."""
    dep = fresh_deployment(("http", "sqlite"), pg, slack, tmp, databases={"app": world.live_url})
    dep.config["databases"][0].update(
        provider=provider,
        **{
            provider: {
                "api_url": standin.url,
                "api_key": "${PROVIDER_KEY}",
                "poll_seconds": 0.2,
                **section,
            }
        },
    )
    dep.exported["PROVIDER_KEY"] = world.key
    dep.start()
    return dep


Deploy = Callable[[ProviderStandIn, str, dict[str, str]], Deployment]


@pytest.fixture
def deploy(world: World, pg: Any, slack: SlackStandin, tmp_path: Path) -> Iterator[Deploy]:
    """Starts a provider stand-in and a serve of `app` on it (`provider`, its config
    `section`); both closed after the test."""
    started: list[ProviderStandIn | Deployment] = []

    def deployed(server: ProviderStandIn, provider: str, section: dict[str, str]) -> Deployment:
        started.append(server.start())
        dep = _deploy(pg, world, slack, server, tmp_path, provider, section)
        started.append(dep)
        return dep

    yield deployed
    for each in reversed(started):
        each.close()


@pytest.fixture
def supabase(world: World, deploy: Deploy) -> tuple[SupabaseStandIn, Deployment]:
    server = SupabaseStandIn(world.key, world.databases, project_ref=REF, database=world.live)
    return server, deploy(server, "supabase", {"project_ref": REF})


@pytest.fixture
def render(world: World, deploy: Deploy) -> tuple[RenderStandIn, Deployment]:
    server = RenderStandIn(world.key, world.databases, postgres_id=PID, database=world.live)
    return server, deploy(server, "render", {"postgres_id": PID})


@pytest.fixture
def railway(world: World, deploy: Deploy) -> tuple[RailwayStandIn, Deployment]:
    server = RailwayStandIn(world.key, world.databases, database=world.live)
    return server, deploy(server, "railway", {"volume_instance_id": "vi-0000-main"})


def _rows(dep: Deployment, model: Any, *where: Any) -> list[Any]:
    engine = create_engine(dep.state_url)
    with engine.connect() as conn:
        rows = list(conn.execute(select(model).where(*where)))
    engine.dispose()
    return rows


def test_supabase_restores_in_place_after_the_bots_own_safety_backup(
    world: World, supabase: tuple[SupabaseStandIn, Deployment]
) -> None:
    server, dep = supabase
    point = (world.old_at + timedelta(minutes=5)).replace(second=0)
    request, restore_id = request_restore(
        dep, f'app --to "{point:%Y-%m-%d %H:%M}" --in-place --reason "dropped a table"'
    )
    shown = _text(request)
    assert "through Supabase" in shown and "Will be overwritten" in shown, shown
    assert "safety backup (label `pre-restore`)" in shown and "about 15 min" in shown, shown
    assert "in place: `app` itself" in shown, shown
    assert "no verified backup from before the point" in shown, shown

    dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
    done = _text(_finished(dep, request.ts))
    assert "Restored by Supabase and verified" in done, done
    # the bot's own safety backup of the database as it was, taken before the restore
    safety = _rows(dep, BackupRow, BackupRow.label == "pre-restore")
    assert len(safety) == 1 and safety[0].status == "succeeded"
    assert f"safety backup `{safety[0].id}`" in done, done
    pitr = next(r for r in server.requests if r.path.endswith("/restore-pitr"))
    assert pitr.body == {"recovery_time_target_unix": int(point.timestamp())}
    assert safety[0].finished_at.replace(tzinfo=UTC) <= datetime.now(UTC)
    # in place: the configured database now holds the point's (older) data
    assert row_counts(world.live_url) == world.old_counts
    row = _rows(dep, RestoreRow, RestoreRow.id == restore_id)[0]
    assert (row.status, row.provider_into, row.safety_backup_id) == (
        "succeeded",
        "in_place",
        safety[0].id,
    )
    report = next(
        m for m in dep.standin.thread(CHANNEL, request.ts) if "Restored by Supabase:" in _text(m)
    )
    assert "No verified backup from before the point" in _text(report)
    assert PG_PASSWORD not in _text(report) and world.key not in _text(report)
    dep.wait_incident(
        lambda i: i.action == "restore.safety_backup" and i.details.get("restore_id") == restore_id
    )
    dep.wait_incident(
        lambda i: (
            i.action == "restore.provider_succeeded"
            and i.details.get("safety_backup_id") == safety[0].id
        )
    )


def test_render_recovers_into_a_new_instance_and_refuses_in_place(
    world: World, render: tuple[RenderStandIn, Deployment]
) -> None:
    server, dep = render
    posts = len(dep.standin.response_posts())
    assert dep.slash(REVIEWER, 'restore app --to "2026-12-01 10:00" --in-place').status == 200
    answer = dep.wait_response(lambda p: dep.standin.response_posts().index(p) >= posts)
    assert "render cannot restore app in place" in _text(answer.body), _text(answer.body)

    point = world.new_at + timedelta(minutes=5)
    request, restore_id = request_restore(dep, f'app --to "{point:%Y-%m-%dT%H:%M:%S}Z"')
    assert "through Render" in _text(request) and "new: `app-restore-" in _text(request)
    dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
    done = _text(_finished(dep, request.ts))
    assert "Restored by Render and verified" in done, done
    new_id = next(i for i in server.instances if i != PID)
    restored = world.databases.url(server.instances[new_id]["databaseName"])
    assert row_counts(restored) == world.new_counts
    assert row_counts(world.live_url) == world.new_counts  # the current instance untouched
    row = _rows(dep, RestoreRow, RestoreRow.id == restore_id)[0]
    assert row.provider_into == "new" and new_id in (row.result_name or ""), row.result_name
    assert server.instances[new_id]["name"] == row.target_db


def test_railway_restores_a_volume_backup_in_place_after_a_safety_backup(
    world: World, railway: tuple[RailwayStandIn, Deployment]
) -> None:
    server, dep = railway
    posts = len(dep.standin.response_posts())
    assert dep.slash(REVIEWER, "restore app --snapshot bkp-0001").status == 200
    answer = dep.wait_response(lambda p: dep.standin.response_posts().index(p) >= posts)
    assert "railway cannot restore a snapshot of app into a new" in _text(answer.body)

    request, restore_id = request_restore(dep, "app --snapshot bkp-0001 --in-place")
    shown = _text(request)
    assert "through Railway" in shown and "snapshot `bkp-0001`" in shown, shown
    assert "Will be overwritten" in shown, shown
    dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
    done = _text(_finished(dep, request.ts))
    assert "Restored by Railway and verified" in done, done
    safety = _rows(dep, BackupRow, BackupRow.label == "pre-restore")
    assert len(safety) == 1 and safety[0].status == "succeeded"
    assert row_counts(world.live_url) == world.old_counts  # the volume holds the backup's data
    row = _rows(dep, RestoreRow, RestoreRow.id == restore_id)[0]
    assert (row.snapshot_id, row.provider_into, row.point_at) == ("bkp-0001", "in_place", None)
    assert any("volumeInstanceBackupRestore" in r.body["query"] for r in server.requests)


def test_railway_restores_a_point_in_time_into_a_new_service(
    world: World, railway: tuple[RailwayStandIn, Deployment]
) -> None:
    """Railway's PITR: `--to` creates a new Postgres service holding the data as of the
    point; the bot connects to its DATABASE_PUBLIC_URL to verify; the current volume is
    untouched."""
    server, dep = railway
    point = world.old_at + timedelta(minutes=5)  # before the newer snapshot
    request, restore_id = request_restore(dep, f'app --to "{point:%Y-%m-%d %H:%M:%S}"')
    assert "through Railway" in _text(request), _text(request)
    dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
    done = _text(_finished(dep, request.ts))
    assert "Restored by Railway and verified" in done, done
    [restored] = [s for sid, s in server.services.items() if sid.startswith("svc-restored-")]
    assert row_counts(restored["url"]) == world.old_counts  # the point's data
    assert row_counts(world.live_url) == world.new_counts  # the current service untouched
    row = _rows(dep, RestoreRow, RestoreRow.id == restore_id)[0]
    assert row.provider_into == "new" and row.point_at is not None
    assert row.point_at.replace(tzinfo=UTC) == point
    assert any("volumeInstancePITRRestore" in r.body["query"] for r in server.requests)
    record = dep.wait_incident(
        lambda i: (
            i.action == "restore.provider_succeeded" and i.details.get("restore_id") == restore_id
        )
    )
    assert PG_PASSWORD not in str(record.details) and world.key not in done
