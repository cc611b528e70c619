"""The `backupbot` CLI: backup now, status, log and config check, in-process."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from backupbot.bot.cli.main import main
from tests.conftest import PG_PASSWORD, free_port


def _write_config(tmp_path: Path, url: str, **extra: Any) -> Path:
    cfg = {
        "state_url": f"sqlite:///{tmp_path}/state.db",
        "storage": {"local": {"path": str(tmp_path / "backups")}},
        "slack": {"channel": "C0BACKUPS"},
        "databases": [{"name": "app", "url": "${APP_DATABASE_URL}"}],
        **extra,
    }
    path = tmp_path / "backupbot.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def config(tmp_path: Path, sample_db: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("APP_DATABASE_URL", sample_db["url"])
    return _write_config(tmp_path, sample_db["url"])


def test_backup_now_prints_the_id_and_exits_zero_only_when_verified(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config), "backup", "now", "app", "--label", "ci"]) == 0
    out, err = capsys.readouterr()
    backup_id = out.strip()
    assert len(backup_id) == 8 and "verified" in err

    assert main(["--config", str(config), "status", "app", "--json"]) == 0
    [status] = json.loads(capsys.readouterr().out)
    assert status["last_success"]["id"] == backup_id
    assert status["last_success"]["label"] == "ci"
    assert status["healthy"] is True

    assert main(["--config", str(config), "log", "--json", "--limit", "5"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records[0]["action"] == "backup.succeeded"
    assert records[0]["actor"] == f"cli:{getpass.getuser()}"
    assert PG_PASSWORD not in json.dumps(records)


def test_backup_now_exits_one_with_the_reason_when_the_server_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "APP_DATABASE_URL", f"postgresql://u:{PG_PASSWORD}@127.0.0.1:{free_port()}/app"
    )
    config = _write_config(tmp_path, "")
    assert main(["--config", str(config), "backup", "now", "app"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Could not reach the database server" in err
    assert PG_PASSWORD not in err
    assert not list((tmp_path / "backups").rglob("*.zst"))
    assert main(["--config", str(config), "status"]) == 1
    assert "The latest backup attempt failed" in capsys.readouterr().out


def test_unknown_database_and_bad_config_exit_two_with_a_fix(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config), "backup", "now", "nope"]) == 2
    assert "no configured database named nope. Configured: app." in capsys.readouterr().err

    bad = tmp_path / "bad.yml"
    bad.write_text("databases:\n  - name: app\n    url: postgresql://h/app\n    shedule: x\n")
    assert main(["--config", str(bad), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert "databases[0].shedule: unknown key; did you mean 'schedule'?" in err


def test_config_check_live_connects_to_databases_and_store(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    assert main(["--config", str(config), "config", "check", "--live"]) == 0
    out = capsys.readouterr().out
    assert "config OK: 1 database(s): app" in out
    assert "store OK" in out and "app OK: PostgreSQL" in out
    assert "SLACK_BOT_TOKEN is not set" in out
    assert "schedule backup:app: 0 2 * * * (UTC), next " in out
    assert "schedule drill: 0 10 1-7 * mon (UTC)" in out
    assert "escalation.levels[0] (DevOps Lead) mentions nobody" in out
