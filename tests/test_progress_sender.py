"""The coalescing message sender and the delivery contract, against the Slack stand-in
over real HTTP with a real `slack_sdk.WebClient` (no retry handlers, as the sender uses
it): faults are injected in the stand-in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from backupbot.bot.slack import delivery, progress_sender
from backupbot.bot.slack.kit import Message
from backupbot.bot.slack.progress_sender import MessageSender
from backupbot.devkit.slack_standin import SlackStandin
from backupbot.errors import SlackUnreachable
from tests.conftest import CHANNEL as CHECKLIST_CHANNEL
from tests.conftest import ManualClock
from tests.test_checklist import NOW, _bot, _checklist_messages, _flow, _incidents

CHANNEL = "C0PROGRESS"


@pytest.fixture
def standin() -> Iterator[SlackStandin]:
    with SlackStandin() as s:
        yield s


@pytest.fixture
def health() -> delivery.DeliveryHealth:
    return delivery.DeliveryHealth()


def _notifier(standin: SlackStandin, health: delivery.DeliveryHealth) -> delivery.Notifier:
    client = WebClient(token=standin.bot_token, base_url=standin.base_url)
    return delivery.Notifier(delivery.without_retries(client), health)


def _msg(text: str) -> Message:
    return Message(text=text, blocks=[])


def _sender(
    standin: SlackStandin, health: delivery.DeliveryHealth, **kwargs: float
) -> MessageSender:
    return MessageSender(_notifier(standin, health), CHANNEL, _msg("started"), **kwargs).start()


def _update_texts(standin: SlackStandin) -> list[str]:
    return [str(p.get("text")) for _m, p in standin.calls("chat.update")]


def test_offers_never_wait_for_slack_and_only_the_newest_version_is_sent(
    standin: SlackStandin, health: delivery.DeliveryHealth
) -> None:
    standin.hold("chat.update")  # Slack takes the first update and does not answer
    sender = _sender(standin, health, interval=0.05)
    sender.offer(_msg("progress 0"))
    assert standin.wait_for(lambda: len(standin.calls("chat.update")) == 1)
    for i in range(1, 200):  # returns although the only sending thread is stuck
        sender.offer(_msg(f"progress {i}"))
    assert _update_texts(standin) == ["progress 0"]
    standin.release("chat.update")

    assert standin.wait_for(lambda: "progress 199" in _update_texts(standin))
    assert sender.finish(_msg("done")) is True
    texts = _update_texts(standin)
    assert texts == ["progress 0", "progress 199", "done"]  # 198 versions dropped
    [message] = standin.messages(CHANNEL)
    assert message.text == "done" and message.history[0]["text"] == "started"


def test_the_final_version_is_sent_last_even_with_an_update_in_flight(
    standin: SlackStandin, health: delivery.DeliveryHealth
) -> None:
    standin.hold("chat.update")
    sender = _sender(standin, health, interval=0.0)
    sender.offer(_msg("progress 1"))
    assert standin.wait_for(lambda: len(standin.calls("chat.update")) == 1)
    sender.offer(_msg("progress 2"))  # pending when the final arrives: dropped
    standin.release("chat.update")
    assert sender.finish(_msg("done")) is True
    sender.offer(_msg("late progress"))  # after the end: ignored

    texts = _update_texts(standin)
    assert texts[-1] == "done" and "late progress" not in texts
    assert standin.messages(CHANNEL)[0].text == "done"


def test_a_rate_limited_result_is_retried_after_retry_after_until_it_lands(
    standin: SlackStandin, health: delivery.DeliveryHealth
) -> None:
    standin.rate_limit("chat.update", times=2, retry_after=1)
    sender = _sender(standin, health)
    assert standin.wait_for(lambda: bool(standin.messages(CHANNEL)))  # "started" is up
    assert sender.finish(_msg("done")) is True
    assert _update_texts(standin) == ["done", "done", "done"]  # 429, 429, then taken
    assert standin.messages(CHANNEL)[0].text == "done"
    assert health.problems() == []  # a rate limit is not a delivery problem


def test_server_errors_are_retried_and_the_result_still_lands(
    standin: SlackStandin, health: delivery.DeliveryHealth
) -> None:
    standin.server_error("chat.update", times=2)
    sender = _sender(standin, health)
    assert standin.wait_for(lambda: bool(standin.messages(CHANNEL)))  # "started" is up
    assert sender.finish(_msg("done")) is True
    assert _update_texts(standin) == ["done"] * 3
    assert standin.messages(CHANNEL)[0].text == "done"


def test_a_result_slack_keeps_refusing_is_given_up_after_the_final_window(
    standin: SlackStandin, health: delivery.DeliveryHealth
) -> None:
    standin.rate_limit("chat.update", times=None, retry_after=1)
    sender = _sender(standin, health, final_window=2.5)
    assert standin.wait_for(lambda: bool(standin.messages(CHANNEL)))  # "started" is up
    assert sender.finish(_msg("done")) is False
    attempts = len(standin.calls("chat.update"))
    assert 1 <= attempts <= 4  # once per Retry-After within the window, then no more
    assert sender.error is not None and not sender.error.permanent
    assert standin.messages(CHANNEL)[0].text == "started"


def test_stopping_the_bot_ends_a_result_still_being_retried(
    standin: SlackStandin, health: delivery.DeliveryHealth
) -> None:
    standin.rate_limit("chat.update", times=None, retry_after=1)
    sender = _sender(standin, health)  # would retry the result for 60 s
    assert standin.wait_for(lambda: bool(standin.messages(CHANNEL)))
    results: list[bool] = []
    job = threading.Thread(target=lambda: results.append(sender.finish(_msg("done"))))
    job.start()
    assert standin.wait_for(lambda: bool(standin.calls("chat.update")))
    progress_sender.give_up_all()  # serve's shutdown
    job.join(timeout=30)
    assert results == [False]
    assert standin.messages(CHANNEL)[0].text == "started"


def test_a_missing_channel_fails_at_once_as_permanent_and_is_reported_until_it_works(
    standin: SlackStandin, health: delivery.DeliveryHealth
) -> None:
    standin.api_error("chat.postMessage", "channel_not_found", channel=CHANNEL)
    sender = _sender(standin, health)
    sender.offer(_msg("progress"))
    assert sender.finish(_msg("done")) is False
    assert len(standin.calls("chat.postMessage")) == 1  # not retried
    assert standin.calls("chat.update") == []
    assert sender.error is not None and sender.error.permanent
    assert sender.error.error == "channel_not_found" and sender.error.first_seen
    [problem] = health.problems()
    assert (problem.channel, problem.error) == (CHANNEL, "channel_not_found")

    notifier = _notifier(standin, health)
    with pytest.raises(delivery.DeliveryError) as again:
        notifier.post(CHANNEL, _msg("x"))
    assert again.value.permanent and not again.value.first_seen  # noted once
    assert notifier.post("C0OTHER", _msg("x"))  # another channel is fine ...
    assert len(health.problems()) == 1  # ... and does not clear this one
    standin.clear_faults()
    assert notifier.post(CHANNEL, _msg("x"))
    assert health.problems() == []


def test_the_contract_tells_permanent_from_transient_failures(
    standin: SlackStandin, health: delivery.DeliveryHealth
) -> None:
    notifier = _notifier(standin, health)
    cases = {
        "invalid_auth": ("api_error", True),
        "not_in_channel": ("api_error", True),
        "is_archived": ("api_error", True),
        "ratelimited": ("rate_limit", False),
        "internal_error": ("server_error", False),
    }
    for error, (fault, permanent) in cases.items():
        if fault == "api_error":
            standin.api_error("chat.postMessage", error, times=1)
        elif fault == "rate_limit":
            standin.rate_limit("chat.postMessage", times=1, retry_after=7)
        else:
            standin.server_error("chat.postMessage", times=1, status=503)
        with pytest.raises(delivery.DeliveryError) as failed:
            notifier.post(CHANNEL, _msg("x"))
        assert (failed.value.error, failed.value.permanent) == (error, permanent)
    standin.rate_limit("chat.postMessage", times=1, retry_after=7)
    with pytest.raises(delivery.DeliveryError) as limited:
        notifier.post(CHANNEL, _msg("x"))
    assert limited.value.retry_after == 7.0 and limited.value.status == 429

    offline = WebClient(token="x", base_url="http://127.0.0.1:9/api/")
    with pytest.raises(delivery.DeliveryError) as unreachable:
        delivery.Notifier(delivery.without_retries(offline), health).post(CHANNEL, _msg("x"))
    assert not unreachable.value.permanent


def test_the_soft_functions_keep_answering_none_and_false(
    standin: SlackStandin, health: delivery.DeliveryHealth
) -> None:
    client = WebClient(token=standin.bot_token, base_url=standin.base_url)
    standin.api_error("chat.postMessage", "channel_not_found", channel="C0GONE")
    assert delivery.post(client, "C0GONE", _msg("x")) is None
    ts = delivery.post(client, CHANNEL, _msg("x"))
    assert ts is not None
    assert delivery.update(client, CHANNEL, ts, _msg("y")) is True
    standin.api_error("chat.update", "message_not_found")
    assert delivery.update(client, CHANNEL, ts, _msg("z")) is False
    standin.clear_faults()
    delivery.post(client, "C0GONE", _msg("x"))  # works again: the process's problem clears
    assert delivery.HEALTH.problem("C0GONE") is None


# -- the monthly checklist when Slack refuses it for good ------------------------------


def test_a_checklist_slack_refuses_for_good_is_recorded_once_and_not_retried_every_minute(
    tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(NOW)
    bot = _bot(bot_factory, f"sqlite:///{tmp_path / 'state.db'}", tmp_path, clock)
    bot.standin.api_error("chat.postMessage", "channel_not_found", channel=CHECKLIST_CHANNEL)
    housekeeping = _flow(bot)  # one flow, as serve's once-a-minute step keeps it

    with pytest.raises(SlackUnreachable, match="channel_not_found"):
        housekeeping.post_monthly(NOW)
    for minutes in range(1, 30):
        assert housekeeping.remind_step(NOW + timedelta(minutes=minutes)) is False
    assert len(bot.standin.calls("chat.postMessage")) == 1  # not once a minute
    [refusal] = _incidents(bot.services, "slack.delivery_failed")
    assert refusal.details["channel"] == CHECKLIST_CHANNEL
    assert refusal.details["error"] == "channel_not_found"

    # An hour on it is tried once more; still refused, still one record.
    assert housekeeping.remind_step(NOW + timedelta(minutes=61)) is False
    assert len(bot.standin.calls("chat.postMessage")) == 2
    assert len(_incidents(bot.services, "slack.delivery_failed")) == 1

    # Someone fixes the channel; the next message that reaches it resumes the checklist.
    bot.standin.clear_faults()
    assert delivery.post(bot.services.slack_client, CHECKLIST_CHANNEL, Message("hi", []))
    assert housekeeping.remind_step(NOW + timedelta(minutes=62)) is True
    assert len(_checklist_messages(bot)) == 1
