"""A bot left running does the runbook's recurring work on its own: ten days of ticks
(the steps APScheduler calls in `serve`) on a controlled clock, then `/backup status`
shows the evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backupbot.bot.runtime.schedule_actions import housekeeping, schedule_runner
from backupbot.devkit.slack_standin import block_kit_errors
from backupbot.storage.catalog import SUCCEEDED
from tests.conftest import CHANNEL, ManualClock, make_settings

START = datetime(2026, 11, 28, 12, tzinfo=UTC)  # a Saturday; Dec 1 is a Tuesday


def test_ten_days_of_schedules_back_up_drill_post_the_checklist_and_status_shows_it(
    sample_db: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(START)
    settings = make_settings(
        state_url=f"sqlite:///{tmp_path}/state.db",
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=[{"name": "app", "url": sample_db["url"], "retention_days": 3}],
        extra={"retention": {"keep_labels": []}},
    )
    bot = bot_factory(settings, clock)
    services, client = bot.services, bot.services.slack_client
    runner = schedule_runner(services, client, "host-a:1")
    tick = housekeeping(services, client)
    while clock.now() < START + timedelta(days=10):
        runner.run_due(clock.now())
        bot.wait_idle()  # the leader only queues; the worker runs each job before the next tick
        tick(clock.now())
        clock.advance(hours=1)

    # a verified backup each night at 02:00 (Nov 29 … Dec 8), retention keeping 3 days
    backups = services.catalog.recent("app", limit=50)
    assert len(backups) == 10
    assert {b.actor for b in backups} == {"scheduler"}
    # at 04:00 on Dec 8 the backups of Dec 6, 7 and 8 are younger than 3 days
    assert [b.status for b in backups] == [SUCCEEDED] * 3 + ["deleted"] * 7
    deleted = [i for i in services.incidents.recent(200) if i.action == "retention.deleted"]
    assert len(deleted) == 7
    # the drill on the first Monday (Dec 7, 10:00) passed and dropped its scratch database
    [drill] = services.drills.recent("app")
    assert drill.status == "passed"
    assert drill.started_at == datetime(2026, 12, 7, 10, tzinfo=UTC)
    assert drill.scratch_dropped
    # the checklist was posted on Dec 1 and reminded after 3 days (nobody signed it)
    texts = [m.text for m in bot.standin.messages(CHANNEL)]
    assert sum("checklist" in t.lower() and "2026-12" in t for t in texts) >= 1
    record = services.checklists.current(clock.now())
    assert record is not None and record.period == "2026-12"
    assert record.reminded_at is not None
    # ... and, unsigned at 4 days, it became an alert
    alerts = services.alerts.summaries()
    assert [a.condition for a in alerts] == ["checklist_overdue"]

    bot.signer.slash_command("UALICE", "status app")
    bot.wait_idle()
    [answer] = [
        p.body for p in bot.standin.response_posts() if "Backup status" in p.body.get("text", "")
    ]
    assert not block_kit_errors(answer["blocks"])
    shown = str(answer["blocks"])
    assert "Next scheduled backup" in shown and "2026-12-09 02:00 UTC" in shown
    assert "Restore drills" in shown and "RTO: target 30 min · tested 2026-12-07 · Pass" in shown
    assert "RTO trend" in shown
    assert "Checklist 2026-12" in shown and "not signed off" in shown
    assert "checklist" in shown.lower() and "not acknowledged" in shown
