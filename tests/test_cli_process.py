"""The installed `backupbot` command as a terminal user or a script meets it: refusals name
the CLI command to run next (never the Slack one), `--json` carries facts, and no output
carries Slack markup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

BACKUPBOT = Path(sys.executable).with_name("backupbot")
MARKUP = ("`", "<@", "<!", "*")


class Cli:
    """Runs the installed console script against one config file; keeps every output."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.env = env
        self.outputs: list[str] = []

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        if not BACKUPBOT.exists():
            pytest.fail(f"{BACKUPBOT} is missing: pip install -e '.[test]'", pytrace=False)
        done = subprocess.run(
            [str(BACKUPBOT), "--config", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.outputs += [done.stdout, done.stderr]
        return done


@pytest.fixture
def cli(tmp_path: Path, sample_db: dict[str, Any]) -> Cli:
    config = tmp_path / "backupbot.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_url": f"sqlite:///{tmp_path}/state.db",
                "storage": {"local": {"path": str(tmp_path / "backups")}},
                "slack": {"channel": "C0BACKUPS"},
                "databases": [{"name": "app", "url": "${APP_DATABASE_URL}"}],
            }
        )
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SLACK_") and k not in ("BACKUPBOT_CONFIG", "APP_DATABASE_URL")
    }
    return Cli(config, {**env, "APP_DATABASE_URL": sample_db["url"]})


def test_refusals_name_the_cli_command_to_run_next_and_no_output_has_slack_markup(
    cli: Cli,
) -> None:
    no_backup = cli(
        "restore", "run", "app", "--into", "app_never", "--break-glass", "--reason", "x"
    )
    assert no_backup.returncode == 2 and no_backup.stdout == ""
    assert "take one with backupbot backup now app." in no_backup.stderr
    assert "/backup" not in no_backup.stderr

    status = cli("status", "app")
    assert status.returncode == 1
    assert "Run backupbot backup now app." in status.stdout
    assert "/backup" not in status.stdout

    nothing = cli("drill", "app")  # a drill with no backup to restore fails, and says how
    assert nothing.returncode == 1
    assert "Take one with backupbot backup now app" in nothing.stdout + nothing.stderr
    assert "/backup" not in nothing.stdout + nothing.stderr

    no_slack = cli("restore", "request", "app")
    assert no_slack.returncode == 2
    assert "backupbot restore run app --break-glass --reason TEXT" in no_slack.stderr

    backup = cli("backup", "now", "app", "--label", "ci", "--json")
    assert backup.returncode == 0, backup.stderr
    made = json.loads(backup.stdout)
    assert made["status"] == "succeeded" and made["label"] == "ci" and made["database"] == "app"
    assert made["stored_size"] > 0 and len(made["sha256"]) == 64

    drill = cli("drill", "app", "--json")
    assert drill.returncode == 0, drill.stderr
    report = json.loads(drill.stdout)
    assert report["passed"] is True and report["backup_id"] == made["id"]
    assert report["tables"] > 0 and report["scratch_dropped"] is True

    healthy = json.loads(cli("status", "app", "--json").stdout)
    assert healthy[0]["healthy"] is True and healthy[0]["last_success"]["id"] == made["id"]
    logged = json.loads(cli("log", "--limit", "50", "--json").stdout)
    assert {"backup.succeeded", "restore.refused"} <= {r["action"] for r in logged}
    # the refusal recorded earlier is worded for the terminal in `backupbot log`
    refused_line = next(
        line
        for line in cli("log", "--limit", "50").stdout.splitlines()
        if "restore.refused" in line
    )
    assert "backupbot backup now app" in refused_line and "/backup" not in refused_line
    for args in (["log"], ["log", "verify"], ["retention"], ["--help"], ["restore", "--help"]):
        assert cli(*args).returncode == 0, args

    shown = "\n".join(cli.outputs)
    assert [m for m in MARKUP if m in shown] == []
