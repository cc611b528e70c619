"""Slack faults against the real `backupbot serve`: the stand-in answers 429, 500 or
`channel_not_found` for real over HTTP, and the backup's outcome, its record and what
people see are checked. Counts, not times: how many `chat.update` calls Slack received."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from backupbot.devkit.slack_standin import PostedMessage
from tests.acceptance.harness import CHANNEL, REQUESTER, Deployment

BACKUP_ID = re.compile(r"\b[0-9a-f]{8}\b")
RETRY_AFTER = 2


@pytest.fixture
def dep(deployment: Deployment) -> Iterator[Deployment]:
    """The module's deployment, its stand-in without faults again afterwards."""
    deployment.standin.clear_faults()
    yield deployment
    deployment.standin.clear_faults()


def _text(message: PostedMessage | dict[str, Any]) -> str:
    if isinstance(message, PostedMessage):
        return message.text + json.dumps(message.blocks)
    return str(message.get("text", "")) + json.dumps(message.get("blocks", []))


def _start_backup(dep: Deployment) -> str:
    """`/backup now app`; the backup id the immediate answer names."""
    answer = dep.slash(REQUESTER, "now app")
    assert answer.status == 200
    found = BACKUP_ID.search(_text(answer.json()))
    assert found, answer.json()
    return found.group()


def _message_of(dep: Deployment, backup_id: str) -> PostedMessage:
    return dep.wait_message(lambda m: backup_id in _text(m))


def _updates(dep: Deployment, ts: str) -> list[str]:
    """The texts of every `chat.update` of message `ts` Slack received, refused ones too."""
    return [str(p.get("text")) for _m, p in dep.standin.calls("chat.update") if p.get("ts") == ts]


def _succeeded(dep: Deployment, backup_id: str) -> Any:
    return dep.wait_incident(lambda i: i.action == "backup.succeeded" and i.backup_id == backup_id)


def _health(dep: Deployment) -> str:
    assert dep.serve is not None
    with urllib.request.urlopen(f"{dep.serve.url}/healthz", timeout=10) as resp:
        assert resp.status == 200
        return str(resp.read().decode())


def test_a_rate_limited_chat_update_neither_slows_nor_loses_the_backup(dep: Deployment) -> None:
    dep.standin.rate_limit("chat.update", times=None, retry_after=RETRY_AFTER)
    backup_id = _start_backup(dep)
    record = _succeeded(dep, backup_id)  # the backup went on while Slack said 429
    message = _message_of(dep, backup_id)

    # Progress waits out each Retry-After (and 3 s between updates) instead of
    # sleeping through five 429 retries per update inside the dump: at most one
    # progress call per Retry-After window of the backup's own duration.
    progress = [t for t in _updates(dep, message.ts) if "succeeded" not in t]
    assert len(progress) <= 1 + record.details["duration_seconds"] / RETRY_AFTER, progress
    assert "succeeded" not in message.text  # every update was refused so far

    # The result is retried while the 429s last, and lands once they stop.
    assert dep.standin.wait_for(lambda: any("succeeded" in t for t in _updates(dep, message.ts)))
    dep.standin.clear_faults("chat.update")
    shown = dep.wait_message(lambda m: m.ts == message.ts and "succeeded" in m.text)
    texts = _updates(dep, message.ts)
    first_result = next(i for i, t in enumerate(texts) if "succeeded" in t)
    assert all("succeeded" in t for t in texts[first_result:]), "no progress after the result"
    assert texts.count(shown.text) >= 2  # refused at least once, then taken
    assert len(list(dep.store_dir.glob(f"app/*-{backup_id}.dump.zst"))) == 1
    assert dep.standin.response_posts() == [] or all(
        backup_id not in _text(p.body) for p in dep.standin.response_posts()
    ), "the channel showed the result: no fallback to the requester"


def test_chat_update_answering_500_a_few_times_still_shows_the_result(dep: Deployment) -> None:
    dep.standin.server_error("chat.update", times=2)
    backup_id = _start_backup(dep)
    _succeeded(dep, backup_id)
    message = dep.wait_message(lambda m: backup_id in _text(m) and "succeeded" in m.text)
    assert len(_updates(dep, message.ts)) >= 3  # two 500s, then the one that landed
    assert "started" in _text(message.history[0]).lower()


def _direct_message(dep: Deployment, backup_id: str) -> PostedMessage:
    """The bot's direct message to the requester that names `backup_id`."""
    found: list[PostedMessage] = []

    def check() -> bool:
        found[:] = [m for m in dep.standin.messages(REQUESTER) if backup_id in _text(m)][:1]
        return bool(found)

    assert dep.standin.wait_for(check, 60), "the requester was not told"
    return found[0]


def test_a_missing_channel_still_backs_up_answers_the_requester_and_degrades_health(
    dep: Deployment,
) -> None:
    for method in ("chat.postMessage", "chat.update", "chat.getPermalink"):
        dep.standin.api_error(method, "channel_not_found", channel=CHANNEL)
    ids = [_start_backup(dep)]
    _succeeded(dep, ids[0])
    answer = _direct_message(dep, ids[0])
    assert "succeeded" in answer.text, answer  # told privately, in a direct message
    ids.append(_start_backup(dep))
    _succeeded(dep, ids[1])
    assert "succeeded" in _direct_message(dep, ids[1]).text

    for backup_id in ids:  # each backup is kept and recorded like any other
        assert len(list(dep.store_dir.glob(f"app/*-{backup_id}.dump.zst"))) == 1
    refusals = [i for i in dep.incidents() if i.action == "slack.delivery_failed"]
    assert len(refusals) == 1, "recorded once, not once per attempt"
    assert refusals[0].details["channel"] == CHANNEL
    assert refusals[0].details["error"] == "channel_not_found"
    assert refusals[0].backup_id == ids[0]
    posts = [
        p
        for _m, p in dep.standin.calls("chat.postMessage")
        if p.get("channel") == CHANNEL and any(b in _text(p) for b in ids)
    ]
    assert len(posts) == 2  # one attempt per backup: a permanent error is not retried

    health = _health(dep)
    assert health.startswith("degraded:") and CHANNEL in health and "channel_not_found" in health
    check = dep.cli("config", "check", "--live", check=False)
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"channel {CHANNEL} (channel_not_found)" in check.stdout
    assert "last Slack delivery failure the bot recorded" in check.stdout

    dep.standin.clear_faults()  # the channel is back: the next message clears the problem
    recovered = _start_backup(dep)
    dep.wait_message(lambda m: recovered in _text(m) and "succeeded" in m.text)
    assert _health(dep) == "ok\n"
    check = dep.cli("config", "check", "--live", check=False)
    assert f"channel {CHANNEL} exists" in check.stdout
