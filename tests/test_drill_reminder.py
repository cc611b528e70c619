"""The reminder before a scheduled restore drill: due `drill.remind_days_before` days
ahead, posted once whoever sweeps, naming each database's backup, server and expected
duration."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backupbot.bot.runtime.schedule_actions import (
    drill_reminders,
    postponed_drills,
    scheduled_drill,
)
from backupbot.bot.slack.flows import Flows
from backupbot.commands.schedule import jobs_from_settings
from backupbot.errors import UsageError
from tests.conftest import CHANNEL, ManualClock, make_settings

# schedules.drill defaults to the first Monday of the month, 10:00 UTC: 2026-12-07.
FIRING = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def _settings(tmp_path: Path, databases: list[dict[str, Any]]) -> Any:
    """A config as the README shows, with these databases (schedules untouched)."""
    return make_settings(
        state_url=f"sqlite:///{tmp_path / 'state.db'}",
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=databases,
    )


def _reminders(bot: Any) -> list[Any]:
    return [m for m in bot.standin.messages(CHANNEL) if m.text.startswith("Restore drill on")]


def test_one_reminder_two_days_before_the_drill_with_what_it_will_restore(
    sample_db: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(FIRING - timedelta(days=9))
    settings = _settings(
        tmp_path,
        [
            {"name": "app", "url": sample_db["url"]},
            {"name": "shop", "url": sample_db["url"], "rto_minutes": 5},
        ],
    )
    bot = bot_factory(settings, clock)
    backup = bot.services.backups.backup_now("app", "scheduler")
    assert bot.services.drills.run("app", "U0ALICE").status == "passed"
    flow = Flows(bot.services, bot.services.slack_client).drill
    reminders = drill_reminders(bot.services)

    clock.advance(days=7, minutes=-1)  # 2 days and 1 minute before
    assert flow.remind_step(reminders) is None and _reminders(bot) == []

    clock.advance(minutes=2)  # 1 minute inside the 2 days
    reminder = flow.remind_step(reminders)
    assert reminder is not None and reminder.firing == FIRING
    # a second sweep, or a second process, posts nothing more
    assert flow.remind_step(drill_reminders(bot.services)) is None
    clock.advance(hours=1)
    assert flow.remind_step(reminders) is None
    [message] = _reminders(bot)
    body = json.dumps(message.blocks)
    assert "Restore drill in 48 h" in body and "2026-12-07 10:00 UTC" in body
    assert f"backup `{backup.id}`" in body and "expected " in body  # app was drilled
    assert "`shop`" in body and "no verified backup yet" in body and "RTO 5 min" in body
    assert "127.0.0.1:" in body and "postgres:" not in body  # the server, no credentials
    [record] = [i for i in bot.services.incidents.recent(50) if i.action == "drill.reminded"]
    assert record.details["firing"] == FIRING.isoformat()
    assert record.details["databases"] == ["app", "shop"]


def test_a_postponed_drill_is_skipped_at_its_firing_and_runs_once_at_the_new_time(
    sample_db: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(FIRING - timedelta(days=2))
    settings = _settings(
        tmp_path,
        [
            {"name": "app", "url": sample_db["url"]},
            {"name": "shop", "url": sample_db["url"]},
        ],
    )
    bot = bot_factory(settings, clock)
    postponer = bot.services.postponements
    for bad in ("0d", "15d", "soon"):
        with pytest.raises(UsageError, match="Postpone by 1d to 14d"):
            postponer.postpone("app", bad, "U0ALICE")
    moved = postponer.postpone("app", "3d", "U0ALICE")
    assert (moved.firing_at, moved.run_at) == (FIRING, FIRING + timedelta(days=3))
    with pytest.raises(UsageError, match="postponed already"):
        postponer.postpone("app", "2d", "U0BOB")
    [record] = [i for i in bot.services.incidents.recent(50) if i.action == "drill.postponed"]
    assert record.actor == "U0ALICE" and record.details["run_at"] == moved.run_at.isoformat()

    client = bot.services.slack_client
    [job] = [j for j in jobs_from_settings(settings) if j.name == "drill"]
    clock.advance(days=2, minutes=1)  # the firing
    result = scheduled_drill(bot.services, client)(job, clock.now())
    assert sorted(result["drills"]) == ["shop"] and result["postponed"] == ["app"]
    flow = Flows(bot.services, client).drill
    assert postponed_drills(bot.services, flow, clock.now()) == []  # not yet

    clock.advance(days=3)
    assert postponed_drills(bot.services, flow, clock.now()) == ["app"]
    assert postponed_drills(bot.services, flow, clock.now()) == []  # once
    latest = bot.services.drills.latest("app")
    assert latest is not None and latest.actor == "scheduler"
    assert latest.started_at == clock.now()


def test_drill_postpone_from_slack_answers_with_the_new_time(
    sample_db: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(FIRING - timedelta(days=1))
    settings = _settings(tmp_path, [{"name": "app", "url": sample_db["url"]}])
    bot = bot_factory(settings, clock)
    answer = bot.signer.slash_command("U0ALICE", "drill postpone app 2d").json()
    assert "2026-12-07 10:00 UTC" in answer["text"] and "2026-12-09 10:00 UTC" in answer["text"]
    bad = bot.signer.slash_command("U0ALICE", "drill postpone app").json()
    assert "Postpone by 1d to 14d" in bad["text"]
