"""A database scheduled in Europe/Berlin, as a user has it: `/backup status` answered by
the real `backupbot serve` shows its next run on Berlin's clock and truly converted to UTC,
and so do `backupbot status` and `backupbot config check`.

The schedule's hour is twelve hours from Berlin's current hour, so the next run is half a
day away whenever the test runs; the expected text is worked out here with zoneinfo, from
the wall clock, not by backupbot's code.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REVIEWER, Deployment
from tests.acceptance.test_flows import _text

BERLIN = ZoneInfo("Europe/Berlin")


def _hour_far_from_now() -> int:
    return (datetime.now(BERLIN).hour + 12) % 24


def _next_at(hour: int) -> datetime:
    """The next `hour`:00 on Berlin's wall clock, as an instant (UTC)."""
    now = datetime.now(UTC)
    day = now.astimezone(BERLIN).date()
    for offset in range(3):
        local = datetime.combine(day + timedelta(days=offset), datetime.min.time(), BERLIN)
        instant = local.replace(hour=hour).astimezone(UTC)
        if instant > now:
            return instant
    raise AssertionError("no next run within three days")


def _labels(instant: datetime) -> tuple[str, str]:
    """The run as the user should read it, and the unconverted label the bug showed."""
    local = instant.astimezone(BERLIN)
    in_utc = (
        instant.strftime("%H:%M")
        if instant.date() == local.date()
        else (instant.strftime("%Y-%m-%d %H:%M"))
    )
    right = f"{local:%Y-%m-%d %H:%M} Europe/Berlin ({in_utc} UTC)"
    wrong = f"{local:%Y-%m-%d %H:%M} UTC"
    return right, wrong


@pytest.fixture(
    params=[
        pytest.param(("http", "sqlite"), id="http-sqlite"),
        pytest.param(("socket", "postgresql"), id="socket-pg"),
    ]
)
def berlin(
    request: pytest.FixtureRequest, pg: Any, tmp_path: Path
) -> Iterator[tuple[Deployment, int]]:
    url, _counts = source_database(pg)
    hour = _hour_far_from_now()
    with SlackStandin() as standin:
        dep = fresh_deployment(
            tuple(request.param), pg, standin, tmp_path / "deploy", databases={"app": url}
        )
        [entry] = dep.config["databases"]
        entry["schedule"] = f"0 {hour} * * *"
        entry["timezone"] = "Europe/Berlin"
        dep.start()
        yield dep, hour
        dep.close()


def test_status_shows_a_berlin_schedules_next_run_on_berlins_clock_and_in_utc(
    berlin: tuple[Deployment, int],
) -> None:
    dep, hour = berlin
    right, wrong = _labels(_next_at(hour))

    before = len(dep.standin.response_posts())
    assert dep.slash(REVIEWER, "status app").status == 200
    post = dep.wait_response(lambda p: dep.standin.response_posts().index(p) >= before)
    shown = _text(post.body)
    assert "Next scheduled backup" in shown
    assert right in shown, shown
    assert wrong not in shown

    cli = dep.cli("status", "app", check=False).stdout
    assert f"next scheduled backup: {right}" in cli, cli
    checked = dep.cli("config", "check", check=False).stdout
    assert f"schedule backup:app: 0 {hour} * * * (Europe/Berlin), next {right}" in checked, checked
