"""The `/backup` command over signed HTTP: answers, errors, status, log, limits, retries."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from backupbot.phrases import from_json
from tests.conftest import CHANNEL, make_settings


@pytest.fixture
def bot(sample_db: dict[str, Any], tmp_path: Path, bot_factory: Any) -> Any:
    settings = make_settings(
        state_url=f"sqlite:///{tmp_path}/s.db",
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=[
            {"name": "app", "url": sample_db["url"]},
            {"name": "analytics", "url": sample_db["url"], "provider": "neon"},
        ],
    )
    return bot_factory(settings)


def test_health_endpoint_answers_load_balancers(bot: Any) -> None:
    for path in ("/", "/healthz"):
        with urllib.request.urlopen(bot.url + path, timeout=5) as resp:
            assert resp.status == 200 and resp.read() == b"ok\n"


def test_requests_with_a_bad_signature_are_rejected(bot: Any) -> None:
    resp = bot.signer.send_raw(
        b"command=%2Fbackup&text=now+app&user_id=UEVE",
        "application/x-www-form-urlencoded",
        signature="v0=" + "0" * 64,
    )
    assert resp.status == 401
    assert bot.services.catalog.recent() == []


@pytest.mark.parametrize(
    ("text", "problem", "usage"),
    [
        ("frobnicate", "is not a /backup command", "/backup now"),
        ("stats", "Did you mean `status`?", "/backup status"),
        ("now", "Which database? Configured: app, analytics.", "/backup now [db]"),
        ("now ap", "Did you mean `app`?", "/backup now [db]"),
        ("now app --lable x", "Unknown option `--lable`", "--label TEXT"),
        ("log 500", "n must be a number from 1 to 50", "/backup log [n]"),
    ],
)
def test_malformed_commands_get_one_ephemeral_answer_with_usage_and_a_record(
    bot: Any, text: str, problem: str, usage: str
) -> None:
    resp = bot.signer.slash_command("UALICE", text)
    assert resp.status == 200
    body = resp.json()
    assert problem in json.dumps(body) and usage in body["text"]
    assert body.get("response_type", "ephemeral") == "ephemeral"
    assert bot.standin.messages(CHANNEL) == []
    rejected = bot.services.incidents.recent(1)[0]
    assert rejected.action == "command.rejected" and rejected.actor == "UALICE"
    assert problem.replace("`", "") in rejected.details["reason"]  # records are plain text
    assert rejected.details["code"].startswith("usage")  # a reason code scripts can read
    # and the phrase, so another front end can word it its own way
    assert str(from_json(rejected.details["phrase"])) == rejected.details["reason"]


def test_help_lists_every_subcommand(bot: Any) -> None:
    body = bot.signer.slash_command("UALICE", "help").json()
    for usage in ("now", "restore", "status", "log", "help"):
        usage = f"/backup {usage}"
        assert usage in body["text"]


def test_status_reports_each_database_in_plain_words(bot: Any) -> None:
    ok = bot.services.backups.backup_now("app", "UALICE")
    bot.signer.slash_command("UBOB", "status")
    bot.wait_idle()
    posts = bot.standin.response_posts()
    assert len(posts) == 1
    text = json.dumps(posts[0].body)
    assert "*app*" in text and ok.id in text and "Backups kept" in text
    assert "analytics" in text and "No verified backup yet" in text
    assert "1 of 2 database(s) need attention: analytics" in posts[0].body["text"]


def test_log_shows_recent_incident_records(bot: Any) -> None:
    record = bot.services.backups.backup_now("app", "UALICE", label="pre-deploy")
    bot.signer.slash_command("UBOB", "log 5")
    bot.wait_idle()
    body = json.dumps(bot.standin.response_posts()[-1].body)
    assert "backup.succeeded" in body and record.id in body and "<@UALICE>" in body


def test_rate_limited_posts_are_retried_after_retry_after_and_the_result_lands(bot: Any) -> None:
    bot.standin.rate_limit("chat.postMessage", times=1, retry_after=1)
    bot.signer.slash_command("UALICE", "now app")
    bot.wait_idle()
    assert len(bot.standin.calls("chat.postMessage")) == 2  # the 429, then the retry
    # One message: "started" updated in place, or, when the backup finished before the
    # retry was due, the result posted as that message.
    [message] = bot.standin.messages(CHANNEL)
    assert "succeeded" in message.text
    assert bot.standin.response_posts() == []  # no fallback to the requester was needed
