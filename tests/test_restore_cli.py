"""`backupbot restore request` and `restore run --break-glass`, in-process, with the Slack
stand-in over HTTP (or no Slack at all, as when it is down)."""

from __future__ import annotations

import getpass
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from backupbot.bot.cli.main import main
from backupbot.bot.composition import build_services, load
from backupbot.bot.slack.flows import Flows
from backupbot.devkit.sample_data import database_fingerprint, load_sample_data
from backupbot.devkit.slack_standin import SlackStandin
from backupbot.storage.restores import RestoreRequests
from tests.conftest import BOT_TOKEN, CHANNEL, PG_PASSWORD, free_port


@pytest.fixture
def source(pg: Any) -> Iterator[dict[str, Any]]:
    name = f"cli_src_{secrets.token_hex(3)}"
    url = pg.create_database(name)
    load_sample_data(url)
    yield {"name": name, "url": url}
    pg.drop_database(name)


@pytest.fixture
def config(tmp_path: Path, source: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("APP_DATABASE_URL", source["url"])
    for var in ("SLACK_BOT_TOKEN", "SLACK_API_URL", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    cfg = {
        "state_url": f"sqlite:///{tmp_path}/state.db",
        "storage": {"local": {"path": str(tmp_path / "backups")}},
        "slack": {"channel": CHANNEL, "approvers": ["UBOB", "UCAROL"]},
        "databases": [{"name": "app", "url": "${APP_DATABASE_URL}"}],
    }
    path = tmp_path / "backupbot.yml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["--config", str(path), "backup", "now", "app"]) == 0
    return path


def _slack_env(monkeypatch: pytest.MonkeyPatch, standin: SlackStandin) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", standin.base_url)


def test_restore_run_refuses_without_break_glass_and_a_reason(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config), "restore", "run", "app", "--into", "x_cli"]) == 2
    assert "--break-glass" in capsys.readouterr().err
    assert main(["--config", str(config), "restore", "run", "app", "--break-glass"]) == 2
    assert "--reason" in capsys.readouterr().err


def test_break_glass_restore_runs_verifies_is_recorded_and_announced_once_slack_is_back(
    pg: Any,
    source: dict[str, Any],
    config: Path,
    slack: SlackStandin,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    # Slack is down: no token reaches the CLI.
    args = ["--config", str(config), "restore", "run", "app", "latest", "--into", "app_bg"]
    try:
        assert main([*args, "--break-glass", "--reason", "Slack outage, bad deploy"]) == 0
        out, err = capsys.readouterr()
        restore_id = out.strip()
        assert "verified" in err and "Slack was not told yet" in err
        assert database_fingerprint(pg.url("app_bg")) == database_fingerprint(source["url"])

        assert main(["--config", str(config), "log", "--json", "--limit", "50"]) == 0
        records = json.loads(capsys.readouterr().out)
        mine = [r for r in records if r["details"].get("restore_id") == restore_id]
        glass = next(r for r in mine if r["action"] == "restore.break_glass")
        assert glass["actor"] == f"cli:{getpass.getuser()}"
        assert glass["details"]["reason"] == "Slack outage, bad deploy"
        assert glass["details"]["break_glass"] is True
        assert any(r["action"] == "restore.succeeded" for r in mine)
        assert PG_PASSWORD not in json.dumps(records)

        # The bot's sweep while Slack still cannot be reached: nothing is lost.
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_API_URL", f"http://127.0.0.1:{free_port()}/api/")
        services = build_services(load(str(config)))
        assert services.slack_client is not None
        assert Flows(services, services.slack_client).restore.announce_pending() == []
        assert [r.id for r in services.restores.unannounced()] == [restore_id]
        services.close()

        # Slack is reachable again: the bot's sweep posts the notice, once.
        _slack_env(monkeypatch, slack)
        services = build_services(load(str(config)))
        assert services.slack_client is not None
        flow = Flows(services, services.slack_client).restore
        assert [r.id for r in flow.announce_pending()] == [restore_id]
        assert flow.announce_pending() == []
        [notice] = slack.messages(CHANNEL)
        assert "Break-glass restore" in notice.text
        assert "Slack outage, bad deploy" in json.dumps(notice.blocks)
        services.close()
    finally:
        pg.drop_database("app_bg")


def test_break_glass_with_slack_up_posts_the_notice_right_away(
    pg: Any,
    config: Path,
    slack: SlackStandin,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _slack_env(monkeypatch, slack)
    args = ["--config", str(config), "restore", "run", "app", "--into", "app_bg2"]
    try:
        assert main([*args, "--break-glass", "--reason", "drill by hand"]) == 0
        assert "Slack was not told" not in capsys.readouterr().err
        [notice] = slack.messages(CHANNEL)
        assert "Break-glass restore" in notice.text and "Restored and verified" in json.dumps(
            notice.blocks
        )
    finally:
        pg.drop_database("app_bg2")


def test_restore_request_from_the_cli_posts_the_request_for_approval_in_slack(
    config: Path,
    slack: SlackStandin,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _slack_env(monkeypatch, slack)
    capsys.readouterr()
    args = ["--config", str(config), "restore", "request", "app", "--into", "app_req"]
    assert main([*args, "--reason", "audit", "--slack-user", "UBOB"]) == 0
    restore_id = capsys.readouterr().out.strip()
    [message] = slack.messages(CHANNEL)
    assert restore_id in json.dumps(message.blocks)
    assert any(b["type"] == "actions" for b in message.blocks)

    services = build_services(load(str(config)), {})
    record = services.restores.get(restore_id)
    assert record.status == "pending" and record.requester == "UBOB"
    assert record.message_ts == message.ts
    # The requester named by --slack-user cannot approve it in Slack.
    assert services.restores.click(restore_id, "approve", "UBOB").refusal.code == "self"
    services.close()


def test_restore_request_without_slack_says_how_to_proceed(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["--config", str(config), "restore", "request", "app"]) == 2
    assert "break-glass" in capsys.readouterr().err


def test_break_glass_into_a_dead_server_fails_with_one_clear_message(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "APP_DATABASE_URL", f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{free_port()}/app"
    )
    capsys.readouterr()
    args = ["--config", str(config), "restore", "run", "app", "--into", "app_dead"]
    assert main([*args, "--break-glass", "--reason", "x"]) == 1
    err = capsys.readouterr().err
    assert "Could not reach the database server" in err and PG_PASSWORD not in err


def test_a_break_glass_restore_names_its_runner_by_slack_id_so_they_cannot_review_it(
    pg: Any,
    config: Path,
    slack: SlackStandin,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _slack_env(monkeypatch, slack)
    args = ["--config", str(config), "restore", "run", "app", "--into", "app_bg_named"]
    glass = [*args, "--break-glass", "--reason", "outage"]
    try:
        assert main([*glass, "--slack-user", "bob; drop"]) == 2
        assert "--slack-user takes a Slack user id" in capsys.readouterr().err
        capsys.readouterr()
        assert main([*glass, "--slack-user", "UBOB"]) == 0
        services = build_services(load(str(config)), {})
        [record] = [
            r
            for r in RestoreRequests(services.engine).recent("app")
            if r.target_db == "app_bg_named"
        ]
        assert record.requester == "UBOB" and record.break_glass
        services.close()
    finally:
        pg.drop_database("app_bg_named")
