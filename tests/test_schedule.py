"""Scheduled runs: cron per database, catch-up within the grace window, exactly once with
two schedulers on one state database, APScheduler's persistent job store and leadership.

Time is a `ManualClock`; the tests call the single-step `run_due(now)` that APScheduler
calls in `serve`, so nothing waits for a schedule."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from backupbot.bot.composition import build_services
from backupbot.bot.runtime.schedule_actions import schedule_actions
from backupbot.bot.runtime.scheduler import BotScheduler, Interval
from backupbot.commands.schedule import (
    ScheduledJob,
    ScheduleRunner,
    jobs_from_settings,
)
from backupbot.storage.catalog import SUCCEEDED
from backupbot.storage.schedule_runs import DONE, MISSED, REGISTERED
from tests.conftest import CHANNEL, ManualClock, make_settings, wait_until

DAY = datetime(2026, 11, 24, tzinfo=UTC)  # a Tuesday


def _settings(state_url: str, tmp_path: Path, databases: list[dict[str, Any]], **extra: Any) -> Any:
    return make_settings(
        state_url=state_url,
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=databases,
        extra=extra or None,
    )


def _backup_runner(services: Any, name: str, grace_hours: float = 6) -> ScheduleRunner:
    """The production runner restricted to the backup jobs."""
    return ScheduleRunner(
        jobs=[j for j in jobs_from_settings(services.settings) if j.kind == "backup"],
        runs=services.scheduled_runs,
        actions=schedule_actions(services, services.slack_client),
        incidents=services.incidents,
        grace=timedelta(hours=grace_hours),
        claimed_by=name,
    )


# -- cron arithmetic ---------------------------------------------------------------------


def test_default_drill_cron_is_the_first_monday_of_each_month_at_ten_utc() -> None:
    drill = ScheduledJob("drill", "drill", "0 10 1-7 * mon")
    fires = drill.fires_between(
        datetime(2026, 11, 30, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC)
    )
    assert fires == [
        datetime(2026, 12, 7, 10, tzinfo=UTC),
        datetime(2027, 1, 4, 10, tzinfo=UTC),
        datetime(2027, 2, 1, 10, tzinfo=UTC),
    ]


def test_database_schedule_uses_its_time_zone() -> None:
    job = ScheduledJob("backup:app", "backup", "0 2 * * *", "America/New_York", "app")
    # 02:00 in New York in November (EST, UTC-5) is 07:00 UTC
    assert job.next_fire(DAY) == datetime(2026, 11, 24, 7, tzinfo=UTC)


def test_fires_between_excludes_the_start_and_includes_the_end() -> None:
    job = ScheduledJob("backup:app", "backup", "0 */6 * * *", database="app")
    assert job.fires_between(DAY, DAY + timedelta(hours=12)) == [
        DAY + timedelta(hours=6),
        DAY + timedelta(hours=12),
    ]


# -- a day of scheduled backups ------------------------------------------------------------


def test_a_day_of_scheduled_backups_runs_each_firing_once_and_posts_each(
    sample_db: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(DAY)  # first start: 00:00 is not owed, later firings are
    settings = _settings(
        f"sqlite:///{tmp_path}/state.db",
        tmp_path,
        [
            {
                "name": "app",
                "url": sample_db["url"],
                "schedule": "0 2 * * *",
                "timezone": "America/New_York",
            },
            {"name": "reports", "url": sample_db["url"], "schedule": "0 */6 * * *"},
        ],
    )
    bot = bot_factory(settings, clock)
    runner = _backup_runner(bot.services, "host-a:1")
    ran = []
    while clock.now() <= DAY + timedelta(days=1):
        ran += [o for o in runner.run_due(clock.now()) if o.status == DONE]
        bot.wait_idle()  # the leader only queues; the worker runs each before the next tick
        clock.advance(minutes=5)

    assert [(o.job, o.scheduled_for) for o in ran] == [
        ("backup:reports", DAY + timedelta(hours=6)),
        ("backup:app", DAY + timedelta(hours=7)),  # 02:00 in New York
        ("backup:reports", DAY + timedelta(hours=12)),
        ("backup:reports", DAY + timedelta(hours=18)),
        ("backup:reports", DAY + timedelta(days=1)),
    ]
    assert all(o.late_seconds < 300 for o in ran)
    backups = bot.services.catalog.recent(limit=50)
    assert len(backups) == 5
    assert {b.status for b in backups} == {SUCCEEDED}
    assert {b.actor for b in backups} == {"scheduler"}
    assert sorted(b.id for b in backups) == sorted(o.result["backup_id"] for o in ran)
    posted = [m.text for m in bot.standin.messages(CHANNEL)]
    assert len(posted) == 5
    assert sum("Backup of reports succeeded" in t for t in posted) == 4
    assert sum("Backup of app succeeded" in t for t in posted) == 1


# -- missed runs ---------------------------------------------------------------------------


def _one_db(sample_db: dict[str, Any], tmp_path: Path, state_url: str | None = None) -> Any:
    return _settings(
        state_url or f"sqlite:///{tmp_path}/state.db",
        tmp_path,
        [{"name": "app", "url": sample_db["url"], "schedule": "0 2 * * *"}],
    )


def test_a_run_missed_while_down_runs_once_at_start_up_and_the_log_says_late(
    sample_db: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(DAY + timedelta(hours=1))
    services = build_services(_one_db(sample_db, tmp_path), {}, clock=clock)
    services.start_worker(None)
    first = _backup_runner(services, "before-the-outage")
    assert first.run_due(clock.now()) == []  # 01:00: nothing due yet
    # the bot is down from 01:00 to 05:00; a new process starts and catches up
    clock.advance(hours=4)
    restarted = _backup_runner(services, "after-the-outage")
    with caplog.at_level(logging.WARNING, logger="backupbot.commands.schedule"):
        outcomes = restarted.run_due(clock.now())
    assert [(o.status, o.scheduled_for, o.late_seconds) for o in outcomes] == [
        (DONE, DAY + timedelta(hours=2), 3 * 3600)
    ]
    assert "starts 3 h 0 min late" in caplog.text
    assert services.jobs.wait_idle(60)
    assert services.catalog.count("app") == 1
    # the next ticks do not run it again
    assert restarted.run_due(clock.advance(minutes=1)) == []
    assert first.run_due(clock.now()) == []
    assert services.catalog.count("app") == 1
    runs = services.scheduled_runs.for_job("backup:app")
    assert [(r.status, r.claimed_by) for r in runs] == [
        (REGISTERED, "before-the-outage"),  # first seen at 01:00: the 02:00 run is owed
        (DONE, "after-the-outage"),
    ]
    services.close()


def test_a_run_missed_beyond_the_grace_window_is_recorded_not_run(
    sample_db: dict[str, Any], tmp_path: Path
) -> None:
    clock = ManualClock(DAY + timedelta(hours=1))
    services = build_services(_one_db(sample_db, tmp_path), {}, clock=clock)
    services.start_worker(None)
    runner = _backup_runner(services, "a")
    assert runner.run_due(clock.now()) == []
    assert [o.status for o in runner.run_due(clock.advance(hours=1))] == [DONE]  # 02:00
    assert services.jobs.wait_idle(60)
    # down for two days; back at 09:00, 7 h after the 02:00 firing (grace 6 h)
    clock.advance(days=2, hours=7)
    outcomes = runner.run_due(clock.now())
    assert [(o.status, o.scheduled_for) for o in outcomes] == [
        (MISSED, DAY + timedelta(days=2, hours=2))
    ]
    assert outcomes[0].result["count"] == 2
    assert services.catalog.count("app") == 1
    missed = [i for i in services.incidents.recent(10) if i.action == "schedule.missed"]
    assert len(missed) == 1 and missed[0].details["count"] == 2
    assert runner.run_due(clock.advance(minutes=5)) == []  # recorded once
    services.close()


def test_a_scheduled_backup_that_fails_is_queued_by_the_run_and_failed_by_the_worker(
    pg: Any, tmp_path: Path
) -> None:
    clock = ManualClock(DAY + timedelta(hours=1))
    bad = pg.url("no_such_database_here")
    settings = _settings(f"sqlite:///{tmp_path}/state.db", tmp_path, [{"name": "app", "url": bad}])
    services = build_services(settings, {}, clock=clock)
    services.start_worker(None)
    runner = _backup_runner(services, "a")
    runner.run_due(clock.now())
    outcomes = runner.run_due(clock.advance(hours=1))
    assert [o.status for o in outcomes] == [DONE] and outcomes[0].result["queued"] is True
    assert services.jobs.wait_idle(60)
    latest = services.catalog.latest("app")
    assert latest is not None and latest.id == outcomes[0].result["backup_id"]
    assert latest.status == "failed" and "no_such_database_here" in (latest.error or "")
    services.close()


# -- two schedulers, one PostgreSQL state database -----------------------------------------


def _pg_state(pg: Any, name: str) -> str:
    return pg.create_database(name).replace("postgresql://", "postgresql+psycopg://", 1)


def test_two_schedulers_on_one_postgres_state_database_run_each_firing_once(
    pg: Any, sample_db: dict[str, Any], tmp_path: Path
) -> None:
    state = _pg_state(pg, "state_two_schedulers")
    clock = ManualClock(DAY + timedelta(minutes=59))
    settings = _settings(
        state,
        tmp_path,
        [
            {"name": "app", "url": sample_db["url"], "schedule": "0 * * * *"},
            {"name": "reports", "url": sample_db["url"], "schedule": "30 * * * *"},
        ],
    )
    # two processes: separate services, engines and runners
    a = build_services(settings, {}, clock=clock)
    b = build_services(settings, {}, clock=clock)
    a.start_worker(None)  # both processes run workers on the shared queue
    b.start_worker(None)
    runners = [_backup_runner(a, "host-a:1"), _backup_runner(b, "host-b:2")]
    assert runners[0].run_due(clock.now()) == runners[1].run_due(clock.now()) == []
    clock.advance(minutes=1)
    for _ in range(4):  # 01:00, 01:30, 02:00, 02:30
        now = clock.now()
        barrier = threading.Barrier(2)
        results: list[list[Any]] = [[], []]

        def tick(
            i: int, when: datetime, barrier: threading.Barrier, results: list[list[Any]]
        ) -> None:
            barrier.wait()
            results[i] = runners[i].run_due(when)

        threads = [threading.Thread(target=tick, args=(i, now, barrier, results)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        # Exactly one process ran the firing. The other either lost the claim ("taken")
        # or started after it was done and found nothing due: both interleavings are right.
        statuses = sorted(o.status for r in results for o in r)
        assert statuses.count(DONE) == 1 and set(statuses) <= {DONE, "taken"}, statuses
        # the firing's backup is queued once; one of the two workers runs it
        assert wait_until(lambda: a.catalog.running("app") is None)
        assert wait_until(lambda: a.catalog.running("reports") is None)
        clock.advance(minutes=30)
    assert a.catalog.count("app") == 2
    assert a.catalog.count("reports") == 2
    for job in ("backup:app", "backup:reports"):  # one ledger row per firing, each done
        fired = [r for r in a.scheduled_runs.for_job(job) if r.status != REGISTERED]
        assert [r.status for r in fired] == [DONE, DONE]
        assert len({r.scheduled_for for r in fired}) == 2
    claimed = {
        r.claimed_by
        for job in ("backup:app", "backup:reports")
        for r in a.scheduled_runs.for_job(job)
    }
    assert claimed <= {"host-a:1", "host-b:2"}
    a.close()
    b.close()
    pg.drop_database("state_two_schedulers")


def test_only_one_scheduler_leads_and_the_other_takes_over_when_it_stops(
    pg: Any, sample_db: dict[str, Any], tmp_path: Path
) -> None:
    state = _pg_state(pg, "state_leader")
    clock = ManualClock(DAY + timedelta(hours=1))
    settings = _settings(
        state, tmp_path, [{"name": "app", "url": sample_db["url"], "schedule": "0 2 * * *"}]
    )
    a = build_services(settings, {}, clock=clock)
    b = build_services(settings, {}, clock=clock)
    ticks: list[str] = []

    def make(services: Any, name: str) -> BotScheduler:
        return BotScheduler(
            engine=services.engine,
            runner=_backup_runner(services, name),
            intervals={"escalation": Interval(60, lambda now, n=name: ticks.append(n))},
            clock=clock,
            grace=timedelta(hours=6),
        )

    first, second = make(a, "a"), make(b, "b")
    try:
        assert first.step() is True
        assert second.step() is False
        assert first.step() is True  # still the leader
        # APScheduler's job store lives in the state database, with the cron's next run
        # (APScheduler computes it from the real time, not the test clock)
        next_run = first.stored_jobs()["backup:app"]
        assert next_run is not None
        assert (next_run.astimezone(UTC).hour, next_run.minute) == (2, 0)
        with a.engine.connect() as conn:
            ids = set(conn.execute(text("SELECT id FROM apscheduler_jobs")).scalars())
        assert ids == {"backup:app", "escalation"}
        # the jobs call the single-step functions
        first.fire("escalation")
        assert ticks == ["a"]
        first.stop()
        assert second.step() is True
        assert second.stored_jobs().keys() == {"backup:app", "escalation"}
    finally:
        first.stop()
        second.stop()
        a.close()
        b.close()
        pg.drop_database("state_leader")


# -- staleness follows the schedule ----------------------------------------------------------


def test_a_backup_is_owed_since_the_schedules_previous_firing_past_its_grace() -> None:
    from backupbot.commands.schedule import stale_rules
    from backupbot.settings import parse_settings

    url = "postgresql://u@h/db"
    store = {"local": {"path": "backups"}}
    settings = parse_settings(
        {
            "storage": store,
            "databases": [
                {"name": "daily", "url": url},
                {"name": "hourly", "url": url, "schedule": "0 * * * *"},
                {"name": "weekly", "url": url, "schedule": "0 3 * * sun"},
            ],
        },
        {},
    )
    rules = stale_rules(settings)
    now = DAY + timedelta(hours=3, minutes=30)  # Tuesday 03:30 UTC
    assert {name: rule.owed_since(now) for name, rule in rules.items()} == {
        "daily": datetime(2026, 11, 23, 2, tzinfo=UTC),  # Monday's: today's is in its grace
        "hourly": DAY + timedelta(hours=1),  # 01:00 + 2 h grace has run out at 03:30
        "weekly": datetime(2026, 11, 22, 3, tzinfo=UTC),  # Sunday 03:00
    }
    fixed = parse_settings(
        {
            "storage": store,
            "databases": [{"name": "daily", "url": url}],
            "backup": {"stale_after_hours": 30},
        },
        {},
    )
    assert stale_rules(fixed)["daily"].owed_since(now) == now - timedelta(hours=30)


def test_status_judges_an_hourly_database_stale_after_three_hours(
    sample_db: dict[str, Any], tmp_path: Path
) -> None:
    clock = ManualClock(DAY)
    settings = _settings(
        f"sqlite:///{tmp_path}/state.db",
        tmp_path,
        [
            {"name": "hourly", "url": sample_db["url"], "schedule": "0 * * * *"},
            {"name": "daily", "url": sample_db["url"]},
        ],
    )
    services = build_services(settings, {}, clock=clock)
    services.backups.backup_now("hourly", "UALICE")
    services.backups.backup_now("daily", "UALICE")
    clock.advance(hours=3, minutes=1)
    by_name = {s.name: s for s in services.status_report()}
    assert any(
        "since the scheduled run of 2026-11-24 01:00 UTC and its 2 h grace" in str(w)
        for w in by_name["hourly"].warnings
    )
    assert by_name["daily"].healthy
    opened = services.alerts.evaluate(clock.now()).opened
    assert [(a.condition, a.database) for a in opened] == [("stale", "hourly")]
    services.close()
