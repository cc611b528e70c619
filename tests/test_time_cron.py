"""Firing times in UTC for any zone and any window: the previous firing, the ends of a
long window of a per-second cron, and DST changes in Europe/Berlin (last Sunday of March:
02:00 CET becomes 03:00 CEST; last Sunday of October: 03:00 CEST becomes 02:00 CET)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from backupbot.bot.composition import build_services
from backupbot.commands.schedule import ScheduledJob, ScheduleRunner
from backupbot.cron import COUNT_CAP, cron_trigger, fire_at_or_before, iter_fires, window
from backupbot.storage.schedule_runs import DONE, MISSED
from tests.conftest import ManualClock, make_settings

SPRING = datetime(2026, 3, 29, tzinfo=UTC)  # Berlin's spring-forward day (01:00 UTC)
AUTUMN = datetime(2026, 10, 25, tzinfo=UTC)  # Berlin's fall-back day (01:00 UTC)

CRONS = [
    ("0 2 * * *", "UTC"),
    ("0 2 * * 1-5", "Europe/Berlin"),
    ("30 2 * * *", "Europe/Berlin"),
    ("*/30 * * * *", "Europe/Berlin"),
    ("0 10 1-7 * mon", "UTC"),
    ("15 3 * * sun", "America/New_York"),
    ("*/4 * * * * *", "Europe/Berlin"),
    ("30 0 2 * * *", "Europe/Berlin"),
]


@pytest.mark.parametrize(("cron", "zone"), CRONS)
def test_the_previous_firing_is_the_newest_one_a_forward_walk_finds(cron: str, zone: str) -> None:
    """Checked against walking forward firing by firing (APScheduler's own direction)
    over a month around each DST change, at on-the-firing and between-firings times."""
    trigger = cron_trigger(cron, zone)
    per_second = "*/4" in cron
    span = timedelta(hours=3) if per_second else timedelta(days=40)
    for day in (SPRING, AUTUMN):
        start = day - span / 2
        walked = list(iter_fires(trigger, start - span, start + span))
        probes = [walked[len(walked) // 2], walked[-1]]
        probes += [start + span * k / 7 for k in range(1, 8)]
        for at in probes:
            expected = max(f for f in walked if f <= at)
            assert fire_at_or_before(trigger, at) == expected, (cron, zone, at)
            assert fire_at_or_before(trigger, at - timedelta(microseconds=1)) == max(
                f for f in walked if f < at
            )


def test_firing_times_are_utc_and_strictly_increasing_across_both_changes() -> None:
    for day in (SPRING, AUTUMN):
        fires = ScheduledJob("t", "backup", "*/30 * * * *", "Europe/Berlin").fires_between(
            day - timedelta(hours=2), day + timedelta(hours=4)
        )
        assert all(f.tzinfo is UTC for f in fires)
        assert all(b - a == timedelta(minutes=30) for a, b in pairwise(fires))
        assert len(fires) == 12  # six hours of half hours: none lost, none doubled


def test_a_daily_0230_in_berlin_on_the_spring_forward_day_fires_at_0330_cest() -> None:
    job = ScheduledJob("backup:app", "backup", "30 2 * * *", "Europe/Berlin", "app")

    fires = job.fires_between(SPRING - timedelta(days=2), SPRING + timedelta(days=2))
    assert fires == [
        datetime(2026, 3, 27, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # 02:30 does not exist: 03:30 CEST
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]
    assert job.previous_fire(SPRING + timedelta(hours=1)) == datetime(
        2026, 3, 28, 1, 30, tzinfo=UTC
    )
    assert job.previous_fire(SPRING + timedelta(hours=2)) == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC
    )
    assert job.next_fire(SPRING) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_a_daily_0230_in_berlin_fires_at_both_instants_of_the_repeated_hour() -> None:
    job = ScheduledJob("backup:app", "backup", "30 2 * * *", "Europe/Berlin", "app")

    # the old walk added a microsecond on the zone's wall clock and never left 02:30
    fires = job.fires_between(AUTUMN - timedelta(days=1), AUTUMN + timedelta(days=2))
    assert fires == [
        datetime(2026, 10, 24, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),  # 02:30 CET, the hour again
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),  # 02:30 CET
    ]
    assert job.previous_fire(AUTUMN + timedelta(hours=1)) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )
    assert job.next_fire(datetime(2026, 10, 25, 0, 30, tzinfo=UTC)) == datetime(
        2026, 10, 25, 1, 30, tzinfo=UTC
    )


def test_a_long_window_of_a_per_second_cron_has_exact_ends_and_a_capped_count() -> None:
    trigger = cron_trigger("*/4 * * * * *", "Europe/Berlin")
    after = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
    until = after + timedelta(days=3)  # 64,800 firings

    w = window(trigger, after, until)
    assert w.first == datetime(2026, 12, 1, 0, 0, 4, tzinfo=UTC)
    assert w.last == datetime(2026, 12, 4, 0, 0, 0, tzinfo=UTC)
    assert (w.count, w.count_exact) == (COUNT_CAP, False)

    short = window(trigger, after, after + timedelta(minutes=10))
    listed = list(iter_fires(trigger, after, after + timedelta(minutes=10)))
    assert (short.first, short.last, short.count, short.count_exact) == (
        listed[0],
        listed[-1],
        len(listed),
        True,
    )
    assert window(trigger, after, after + timedelta(seconds=2)).count == 0


def _runner(
    services: Any, job: ScheduledJob, ran: list[datetime], grace: timedelta
) -> ScheduleRunner:
    def action(_job: ScheduledJob, now: datetime) -> dict[str, Any]:
        ran.append(now)
        return {"ok": True}

    return ScheduleRunner(
        jobs=[job],
        runs=services.scheduled_runs,
        actions={job.kind: action},
        incidents=services.incidents,
        grace=grace,
        claimed_by="test",
    )


def _services(tmp_path: Path, clock: ManualClock) -> Any:
    settings = make_settings(
        state_url=f"sqlite:///{tmp_path}/state.db",
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=[{"name": "app", "url": "postgresql://u@127.0.0.1:9/app"}],
    )
    return build_services(settings, {}, clock=clock)


def test_a_per_second_cron_down_for_days_records_the_newest_missed_firing(tmp_path: Path) -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    clock = ManualClock(start)
    services = _services(tmp_path, clock)
    job = ScheduledJob("tick", "checklist", "*/4 * * * * *", "Europe/Berlin")
    ran: list[datetime] = []
    runner = _runner(services, job, ran, grace=timedelta(hours=2))
    assert runner.run_due(clock.now()) == []  # registered
    assert [o.status for o in runner.run_due(clock.advance(seconds=4))] == [DONE]

    back = clock.advance(days=3)  # down for three days: 64,799 firings missed or due
    missed, due = runner.run_due(back)
    window_start = back - timedelta(hours=2)
    assert (missed.status, missed.scheduled_for) == (MISSED, window_start - timedelta(seconds=4))
    assert missed.result["last"] == (window_start - timedelta(seconds=4)).isoformat()
    assert missed.result["first"] == (start + timedelta(seconds=8)).isoformat()
    assert missed.result["count_at_least"] is True and missed.result["count"] == COUNT_CAP
    # the grace window's 1,800 firings run once, as the newest
    assert (due.status, due.scheduled_for, due.result["coalesced"]) == (DONE, back, 1799)
    assert ran == [start + timedelta(seconds=4), back]
    [incident] = [i for i in services.incidents.recent(10) if i.action == "schedule.missed"]
    assert incident.details["last"] == missed.result["last"]

    assert [(o.status, o.scheduled_for) for o in runner.run_due(clock.advance(seconds=4))] == [
        (DONE, back + timedelta(seconds=4))
    ]
    services.close()


def test_the_fall_back_night_runs_a_0230_berlin_job_once_per_instant(tmp_path: Path) -> None:
    clock = ManualClock(AUTUMN - timedelta(hours=1))
    services = _services(tmp_path, clock)
    job = ScheduledJob("tick", "checklist", "30 2 * * *", "Europe/Berlin")
    ran: list[datetime] = []
    runner = _runner(services, job, ran, grace=timedelta(hours=6))
    runner.run_due(clock.now())  # registered at 23:00 UTC
    outcomes = []
    while clock.now() < AUTUMN + timedelta(hours=4):
        outcomes += runner.run_due(clock.advance(minutes=1))
    assert [(o.status, o.scheduled_for) for o in outcomes] == [
        (DONE, datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        (DONE, datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
    ]
    services.close()
