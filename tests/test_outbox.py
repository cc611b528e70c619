"""The Slack outbox (`storage/outbox.py`) and its sender (`bot/slack/outbox_delivery.py`),
on a real SQLite state database and the Slack stand-in over HTTP: superseding, exclusive
claims, backoff, taking over a stopped sender's claim, permanent refusals recorded once,
and a retried update that never turns into a second post."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from slack_sdk import WebClient

from backupbot.bot.slack.kit import Message
from backupbot.bot.slack.outbox_delivery import OutboxDelivery
from backupbot.devkit.slack_standin import SlackStandin
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.outbox import (
    CLAIM_STALE,
    DELIVERED,
    FAILED,
    GIVE_UP_AFTER,
    PENDING,
    SUPERSEDED,
    Outbox,
    backoff,
)
from backupbot.storage.state import create_state_engine, migrate
from tests.conftest import ManualClock

CHANNEL = "C0BACKUPS"


@pytest.fixture
def standin() -> Iterator[SlackStandin]:
    with SlackStandin() as s:
        yield s


@pytest.fixture
def parts(
    tmp_path: Path, standin: SlackStandin
) -> tuple[Outbox, OutboxDelivery, IncidentLog, ManualClock]:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    clock = ManualClock()
    outbox, incidents = Outbox(engine), IncidentLog(engine)
    client = WebClient(token=standin.bot_token, base_url=standin.base_url)
    return outbox, OutboxDelivery(outbox, client, incidents, clock), incidents, clock


def _msg(text: str) -> Message:
    return Message(text=text, blocks=[])


def test_backoff_doubles_to_a_cap_and_honours_retry_after() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff(20) == timedelta(minutes=15)
    assert backoff(1, retry_after=30) == timedelta(seconds=30)


def test_a_newer_version_supersedes_a_waiting_one_and_claims_are_exclusive(
    parts: tuple[Outbox, OutboxDelivery, IncidentLog, ManualClock],
) -> None:
    outbox, _, _, clock = parts
    first = outbox.add("backup:1", CHANNEL, {"text": "running"}, clock.now(), ts="1.1")
    second = outbox.add("backup:1", CHANNEL, {"text": "done"}, clock.now(), ts="1.1")
    assert [i.status for i in outbox.for_key("backup:1")] == [SUPERSEDED, PENDING]
    assert [i.id for i in outbox.due(clock.now())] == [second.id]
    assert not outbox.claim(first, clock.now())  # superseded: nobody sends it
    assert outbox.claim(second, clock.now())
    assert not outbox.claim(second, clock.now())  # taken once
    # The claimer stopped mid-send: after CLAIM_STALE another process may take it.
    assert outbox.due(clock.now()) == []
    later = clock.advance(seconds=CLAIM_STALE.total_seconds() + 1)
    [stale] = outbox.due(later)
    assert stale.id == second.id and outbox.claim(stale, later)


def test_a_transient_failure_waits_its_backoff_then_delivers_once(
    parts: tuple[Outbox, OutboxDelivery, IncidentLog, ManualClock], standin: SlackStandin
) -> None:
    outbox, results, _, clock = parts
    standin.server_error("chat.postMessage", times=1)
    assert results.send("drill:d1", CHANNEL, _msg("drill passed")) is None
    [item] = outbox.for_key("drill:d1")
    assert (item.status, item.attempts) == (PENDING, 1)
    assert results.deliver_due() == 0  # not due before its backoff
    clock.advance(seconds=backoff(1).total_seconds())
    assert results.deliver_due() == 1
    assert [m.text for m in standin.messages(CHANNEL)] == ["drill passed"]
    assert outbox.get(item.id).status == DELIVERED
    assert results.deliver_due() == 0  # nothing left: never sent twice


def test_an_update_of_a_message_the_outbox_posted_is_not_a_second_post(
    parts: tuple[Outbox, OutboxDelivery, IncidentLog, ManualClock], standin: SlackStandin
) -> None:
    _, results, _, _ = parts
    ts = results.send("backup:b1", CHANNEL, _msg("backup started"))
    assert ts is not None
    assert results.send("backup:b1", CHANNEL, _msg("backup succeeded")) == ts
    [only] = standin.messages(CHANNEL)
    assert (only.ts, only.text) == (ts, "backup succeeded")


def test_a_permanent_refusal_stops_at_once_and_is_recorded_once(
    parts: tuple[Outbox, OutboxDelivery, IncidentLog, ManualClock], standin: SlackStandin
) -> None:
    outbox, results, incidents, clock = parts
    gone = f"C0GONE{secrets.token_hex(3).upper()}"
    standin.api_error("chat.postMessage", "channel_not_found", channel=gone)
    for n in range(2):
        assert results.send(f"drill:d{n}", gone, _msg("drill passed")) is None
    assert [i.status for i in outbox.for_key("drill:d0") + outbox.for_key("drill:d1")] == [
        FAILED,
        FAILED,
    ]
    clock.advance(hours=1)
    assert results.deliver_due() == 0
    refusals = [i for i in incidents.recent(20) if i.action == "slack.delivery_failed"]
    assert [(r.details["error"], r.details["permanent"]) for r in refusals] == [
        ("channel_not_found", True)
    ]


def test_a_message_slack_keeps_refusing_is_given_up_after_a_day_and_recorded(
    parts: tuple[Outbox, OutboxDelivery, IncidentLog, ManualClock], standin: SlackStandin
) -> None:
    outbox, results, incidents, clock = parts
    standin.server_error("chat.postMessage", times=None)
    results.send("restore:r1:report", CHANNEL, _msg("report"), thread_ts="1.1")
    clock.advance(seconds=GIVE_UP_AFTER.total_seconds())
    assert results.deliver_due() == 0
    [item] = outbox.for_key("restore:r1:report")
    assert item.status == FAILED and "gave up" in (item.error or "")
    [record] = [i for i in incidents.recent(20) if i.action == "slack.delivery_failed"]
    assert record.details["permanent"] is False and record.details["message"] == item.key
