"""The acknowledgement timeout: an acknowledged alert still failing `reack_after_minutes`
after the acknowledgement loses it, pages the acknowledger and the current level once,
shows unacknowledged, and escalates on from there; acknowledging again restarts the
timer. Against the real state database (both kinds) and the Slack stand-in, with a
controlled clock; two bot processes on one PostgreSQL state database page once."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from backupbot.bot.slack.flows.alert import AlertFlow
from tests.conftest import CHANNEL, ManualClock, make_settings
from tests.test_escalation import (
    DBA,
    DEVOPS,
    LEAD,
    LEVELS,
    T0,
    _dms,
    _fail,
    _flow,
    _has_ack_button,
    _incidents,
    _replies,
    pg_state_url,
)

__all__ = ["pg_state_url"]  # the fixture, shared with test_escalation

DEAD_URL = "postgresql://u:p@127.0.0.1:9/app"


def _reack_settings(state_url: str, tmp_path: Path, minutes: int = 60) -> Any:
    return make_settings(
        state_url=state_url,
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=[{"name": "app", "url": DEAD_URL, "provider": "neon"}],
        extra={"escalation": {"levels": LEVELS, "reack_after_minutes": minutes}},
    )


def _ack(bot: Any, user: str) -> None:
    [alert] = bot.services.alerts.open_alerts()
    url = bot.standin.new_response_url()
    bot.signer.block_action(
        user, "alert_ack", alert.id, CHANNEL, alert.message_ts, response_url=url
    )
    bot.wait_idle()
    assert bot.standin.response_posts(url) == []  # accepted: no private answer
    assert bot.services.alerts.get(alert.id).acknowledged_by == user


def _still_failing(bot: Any, ts: str) -> list[Any]:
    return [r for r in _replies(bot, ts) if "Still failing" in r.text]


def test_an_acknowledgement_lapses_once_pages_again_and_a_new_one_restarts_the_timer(
    state_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(T0)
    bot = bot_factory(_reack_settings(state_url, tmp_path), clock)
    _fail(bot.services, T0 - timedelta(minutes=1))
    flow = _flow(bot)
    flow.step(clock.now())  # opened; level 1 (LEAD, DEVOPS) fired
    [alert] = bot.services.alerts.open_alerts()
    clock.advance(minutes=5)
    _ack(bot, LEAD)
    message = bot.standin.message(CHANNEL, alert.message_ts)
    assert "they start again at 2026-11-24 03:05 UTC" in json.dumps(message.blocks)

    clock.advance(minutes=59, seconds=59)
    assert flow.step(clock.now()).repages == []
    clock.advance(seconds=1)  # 60 min after the acknowledgement
    step = flow.step(clock.now())
    assert [r.acknowledged_by for r in step.repages] == [LEAD] and step.pings == []
    [note] = _still_failing(bot, alert.message_ts)
    body = json.dumps(note.blocks)
    assert f"Still failing 60 min after <@{LEAD}> acknowledged; paging again" in body
    assert f"<@{LEAD}> <!subteam^{DEVOPS}> (DevOps Lead): please look" in body
    assert len(_dms(bot, LEAD)) == 2  # the first ping's DM and the re-page's
    lapsed = bot.services.alerts.get(alert.id)
    assert lapsed.acknowledged_by is None and lapsed.is_open
    message = bot.standin.message(CHANNEL, alert.message_ts)
    assert _has_ack_button(message) and "unacknowledged" in json.dumps(message.blocks)
    [record] = _incidents(bot, "alert.reack")
    assert record.details["acknowledged_by"] == LEAD and record.details["minutes"] == 60
    assert record.details["mentions"] == [LEAD, DEVOPS] and record.outcome == "sent"

    flow.step(clock.now())  # the same minute again: nothing more
    assert len(_incidents(bot, "alert.reack")) == 1

    # The path restarts at the current level: the next one is due 15 min from now,
    # not at once (it was due at 15 min after opening).
    clock.advance(minutes=14)
    assert flow.step(clock.now()).pings == []
    clock.advance(minutes=1)
    [ping] = flow.step(clock.now()).pings
    assert ping.name == "Database Admin" and not ping.late and len(_dms(bot, DBA)) == 1

    _ack(bot, LEAD)  # the timer restarts from this acknowledgement
    clock.advance(minutes=59)
    assert flow.step(clock.now()).repages == []
    clock.advance(minutes=1)
    [again] = flow.step(clock.now()).repages
    assert again.level_name == "Database Admin" and again.users == (LEAD, DBA)
    assert [r.details["minutes"] for r in _incidents(bot, "alert.reack")] == [60, 60]


def test_zero_means_an_acknowledgement_holds(
    state_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(T0)
    bot = bot_factory(_reack_settings(state_url, tmp_path, minutes=0), clock)
    _fail(bot.services, T0 - timedelta(minutes=1))
    flow = _flow(bot)
    flow.step(clock.now())
    _ack(bot, LEAD)
    [alert] = bot.services.alerts.open_alerts()
    assert "no more pings" in json.dumps(bot.standin.message(CHANNEL, alert.message_ts).blocks)
    clock.advance(days=3)
    step = flow.step(clock.now())
    assert step.repages == [] and [p for p in step.pings if p.alert.id == alert.id] == []
    assert bot.services.alerts.get(alert.id).acknowledged_by == LEAD
    assert _incidents(bot, "alert.reack") == []


def test_two_processes_ticking_at_once_page_a_lapse_once(
    pg_state_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(T0)
    settings = _reack_settings(pg_state_url, tmp_path)
    bots = [bot_factory(settings, clock), bot_factory(settings, clock)]
    _fail(bots[0].services, T0 - timedelta(minutes=1))
    flows = [_flow(b) for b in bots]
    flows[0].step(clock.now())
    _ack(bots[0], LEAD)
    clock.advance(minutes=61)

    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run(flow: AlertFlow) -> None:
        try:
            barrier.wait(timeout=30)
            flow.step(clock.now())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f,)) for f in flows + flows]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    [alert] = bots[1].services.alerts.open_alerts()
    assert len(_still_failing(bots[0], alert.message_ts)) == 1
    assert len(_incidents(bots[0], "alert.reack")) == 1
