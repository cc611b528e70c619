"""Staleness follows the schedule, judged at each check: a database is stale when no
verified backup started since its schedule's previous firing plus the grace
(`backup.stale_grace_hours`, 2 h by default). Real backups of the sample database (real
pg_dump) on a `ManualClock`; `/backup status` as built for Slack, and the alert check of
the same services, built once at the start like `serve` builds it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backupbot.bot.composition import build_services
from backupbot.bot.services import Services
from backupbot.bot.slack.blocks.status import status_message
from backupbot.commands.conditions import STALE
from backupbot.storage.catalog import SUCCEEDED
from tests.conftest import ManualClock, make_settings

GRACE = "and its 2 h grace"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 1, 1, tzinfo=UTC))


def _services(
    sample_db: dict[str, Any], tmp_path: Path, clock: ManualClock, schedule: str, zone: str
) -> Services:
    settings = make_settings(
        state_url=f"sqlite:///{tmp_path}/state.db",
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=[
            {"name": "app", "url": sample_db["url"], "schedule": schedule, "timezone": zone}
        ],
    )
    return build_services(settings, {}, clock=clock)


@pytest.fixture
def at(clock: ManualClock) -> Iterator[Any]:
    """Move the clock to a time (it only moves forward)."""

    def move(t: datetime) -> datetime:
        assert t >= clock.now()
        return clock.advance(seconds=(t - clock.now()).total_seconds())

    yield move


def _backup(services: Services) -> None:
    record = services.backups.backup_now("app", "scheduler")
    assert record.status == SUCCEEDED


def _stale_warning(services: Services) -> str | None:
    [status] = services.status_report("app")
    return next((str(w) for w in status.warnings if str(w).startswith("No verified")), None)


def _open_stale(services: Services) -> list[str]:
    services.alerts.evaluate(services.clock.now())
    return [str(a.summary) for a in services.alerts.summaries() if a.condition == STALE]


def test_a_weekday_schedule_is_not_stale_at_the_weekend(
    sample_db: dict[str, Any], tmp_path: Path, clock: ManualClock, at: Any
) -> None:
    services = _services(sample_db, tmp_path, clock, "0 2 * * 1-5", "UTC")
    at(datetime(2026, 12, 4, 2, 0, 20, tzinfo=UTC))  # Friday's run
    _backup(services)

    for when in (
        datetime(2026, 12, 4, 12, 0, tzinfo=UTC),
        datetime(2026, 12, 5, 4, 1, tzinfo=UTC),  # Saturday, 26 h later: no weekday run owed
        datetime(2026, 12, 5, 23, 0, tzinfo=UTC),
        datetime(2026, 12, 6, 12, 0, tzinfo=UTC),  # Sunday
        datetime(2026, 12, 7, 3, 59, 59, tzinfo=UTC),  # Monday, inside the 02:00 run's grace
    ):
        at(when)
        assert _stale_warning(services) is None, when
        assert _open_stale(services) == [], when

    at(datetime(2026, 12, 7, 4, 0, 1, tzinfo=UTC))  # Monday's grace is over, no backup
    warning = _stale_warning(services)
    assert warning is not None
    assert f"since the scheduled run of 2026-12-07 02:00 UTC {GRACE}" in warning
    assert "the newest is 3 days ago" in warning
    [summary] = _open_stale(services)
    assert f"since the scheduled run of 2026-12-07 02:00 UTC {GRACE}" in summary

    at(datetime(2026, 12, 7, 4, 10, tzinfo=UTC))  # someone runs it by hand
    _backup(services)
    assert _stale_warning(services) is None
    assert _open_stale(services) == []
    services.close()


def test_a_berlin_schedule_is_owed_and_shown_on_berlins_clock(
    sample_db: dict[str, Any], tmp_path: Path, clock: ManualClock, at: Any
) -> None:
    services = _services(sample_db, tmp_path, clock, "0 3 * * *", "Europe/Berlin")
    at(datetime(2026, 12, 2, 2, 0, 20, tzinfo=UTC))  # 03:00 CET
    _backup(services)

    at(datetime(2026, 12, 3, 3, 59, tzinfo=UTC))  # 02:00 UTC's run is within its grace
    assert _stale_warning(services) is None
    assert _open_stale(services) == []
    [status] = services.status_report("app")
    assert status.next_backup == datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
    assert status.next_backup_text == "2026-12-04 03:00 Europe/Berlin (02:00 UTC)"
    shown = json.dumps(status_message([status]).blocks)
    assert "2026-12-04 03:00 Europe/Berlin (02:00 UTC)" in shown
    assert "03:00 UTC" not in shown

    at(datetime(2026, 12, 3, 4, 0, 1, tzinfo=UTC))
    owed = f"since the scheduled run of 2026-12-03 03:00 Europe/Berlin (02:00 UTC) {GRACE}"
    assert owed in (_stale_warning(services) or "")
    [summary] = _open_stale(services)
    assert owed in summary
    assert "(2026-12-02 02:00:20 UTC, id" in summary  # the newest backup, in UTC
    services.close()


def test_a_0230_berlin_schedule_across_the_spring_forward_day(
    sample_db: dict[str, Any], tmp_path: Path, clock: ManualClock, at: Any
) -> None:
    # 29 March 2026: 02:00 CET becomes 03:00 CEST; 02:30 does not exist and fires at 03:30
    services = _services(sample_db, tmp_path, clock, "30 2 * * *", "Europe/Berlin")
    at(datetime(2026, 3, 28, 1, 30, 20, tzinfo=UTC))  # 02:30 CET
    _backup(services)

    at(datetime(2026, 3, 29, 0, 0, tzinfo=UTC))
    [status] = services.status_report("app")
    assert status.next_backup_text == "2026-03-29 03:30 Europe/Berlin (01:30 UTC)"

    at(datetime(2026, 3, 29, 3, 29, tzinfo=UTC))  # the 01:30 UTC run's grace is not over
    assert _stale_warning(services) is None
    assert _open_stale(services) == []
    at(datetime(2026, 3, 29, 3, 31, tzinfo=UTC))
    owed = f"since the scheduled run of 2026-03-29 03:30 Europe/Berlin (01:30 UTC) {GRACE}"
    assert owed in (_stale_warning(services) or "")
    assert [owed in s for s in _open_stale(services)] == [True]

    at(datetime(2026, 3, 29, 3, 35, tzinfo=UTC))
    _backup(services)
    [status] = services.status_report("app")
    assert status.healthy
    assert status.next_backup_text == "2026-03-30 02:30 Europe/Berlin (00:30 UTC)"  # CEST now
    assert _open_stale(services) == []

    at(datetime(2026, 3, 30, 2, 29, tzinfo=UTC))
    assert _stale_warning(services) is None
    at(datetime(2026, 3, 30, 2, 31, tzinfo=UTC))
    owed = f"since the scheduled run of 2026-03-30 02:30 Europe/Berlin (00:30 UTC) {GRACE}"
    assert owed in (_stale_warning(services) or "")
    services.close()


def test_a_0230_berlin_schedule_across_the_fall_back_night(
    sample_db: dict[str, Any], tmp_path: Path, clock: ManualClock, at: Any
) -> None:
    # 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice and fires twice
    services = _services(sample_db, tmp_path, clock, "30 2 * * *", "Europe/Berlin")
    at(datetime(2026, 10, 25, 0, 0, tzinfo=UTC))
    [status] = services.status_report("app")
    assert status.next_backup_text == "2026-10-25 02:30 Europe/Berlin (00:30 UTC)"
    at(datetime(2026, 10, 25, 0, 30, 20, tzinfo=UTC))  # 02:30 CEST
    _backup(services)
    [status] = services.status_report("app")
    assert status.next_backup_text == "2026-10-25 02:30 Europe/Berlin (01:30 UTC)"  # CET
    at(datetime(2026, 10, 25, 1, 30, 20, tzinfo=UTC))  # 02:30 CET
    _backup(services)
    [status] = services.status_report("app")
    assert status.next_backup_text == "2026-10-26 02:30 Europe/Berlin (01:30 UTC)"

    at(datetime(2026, 10, 26, 3, 29, tzinfo=UTC))
    assert _stale_warning(services) is None
    assert _open_stale(services) == []
    at(datetime(2026, 10, 26, 3, 31, tzinfo=UTC))
    owed = f"since the scheduled run of 2026-10-26 02:30 Europe/Berlin (01:30 UTC) {GRACE}"
    assert owed in (_stale_warning(services) or "")
    assert [owed in s for s in _open_stale(services)] == [True]
    services.close()


def test_a_fixed_stale_after_hours_still_measures_the_newest_backups_age(
    sample_db: dict[str, Any], tmp_path: Path, clock: ManualClock, at: Any
) -> None:
    settings = make_settings(
        state_url=f"sqlite:///{tmp_path}/state.db",
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=[{"name": "app", "url": sample_db["url"], "schedule": "0 2 * * 1-5"}],
        extra={"backup": {"stale_after_hours": 30}},
    )
    services = build_services(settings, {}, clock=clock)
    at(datetime(2026, 12, 4, 2, 0, 20, tzinfo=UTC))  # Friday
    _backup(services)
    at(datetime(2026, 12, 5, 8, 0, 0, tzinfo=UTC))  # 29 h 59 min 40 s later
    assert _stale_warning(services) is None
    assert _open_stale(services) == []
    at(datetime(2026, 12, 5, 8, 0, 21, tzinfo=UTC))  # over 30 h, weekend or not
    assert "in the last 30 h" in (_stale_warning(services) or "")
    assert [("in the last 30 h" in s) for s in _open_stale(services)] == [True]
    services.close()
