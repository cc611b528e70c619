"""`backupbot status` stays lean: its process builds only what status reads
(`bot/status_composition.py`), so the S3 client, Slack, compression, encryption and the
backup/restore/approval/escalation machinery are never imported, even when configured;
and the configuration is still validated whole (a section status does not read still
fails it). Nothing here is timed: what a status process loads is the measure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

# Run as the console script runs: the CLI's main, then report what got imported.
PROBE = (
    "import json, sys\n"
    "from backupbot.bot.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n"
    "sys.exit(code)\n"
)
NEVER_IMPORTED = (
    "boto3",
    "botocore",
    "slack_sdk",
    "slack_bolt",
    "zstandard",
    "pyrage",
    "httpx",
    "procrastinate",
    "backupbot.bot.composition",
    "backupbot.bot.services",
    "backupbot.bot.slack",
    "backupbot.bot.cli.actions",
    "backupbot.commands.backup",
    "backupbot.commands.backup_pipeline",
    "backupbot.commands.restore",
    "backupbot.commands.restore_run",
    "backupbot.commands.approvals",
    "backupbot.commands.escalation",
    "backupbot.commands.drill",
    "backupbot.storage.s3_store",
    "backupbot.storage.dumpstream",
    "backupbot.storage.agestream",
    "backupbot.storage.pg_dump",
    "backupbot.storage.pg_restore",
)


def _config(tmp_path: Path, **extra: Any) -> Path:
    config = tmp_path / "backupbot.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_url": f"sqlite:///{tmp_path}/state.db",
                # S3 and Slack configured: a full build would make an S3 and a Slack client
                "storage": {"s3": {"bucket": "backups", "endpoint_url": "http://127.0.0.1:9"}},
                "slack": {"channel": "C0BACKUPS"},
                "databases": [{"name": "app", "url": "postgresql://u@127.0.0.1:9/app"}],
                **extra,
            }
        )
    )
    return config


def _status(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "BACKUPBOT_CONFIG"}
    env.update(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="s")
    return subprocess.run(
        [sys.executable, "-c", PROBE, "--config", str(config), "status", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _loaded(done: subprocess.CompletedProcess[str]) -> tuple[int, set[str], list[str]]:
    *shown, last = done.stdout.splitlines()
    probe = json.loads(last)
    return probe["code"], set(probe["modules"]), shown


def _heavy(modules: set[str]) -> list[str]:
    return sorted(
        m for m in NEVER_IMPORTED if any(n == m or n.startswith(m + ".") for n in modules)
    )


def test_status_imports_none_of_the_backup_restore_slack_or_s3_machinery(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _status(config)  # creates and migrates the state database
    done = _status(config)
    code, modules, shown = _loaded(done)
    assert code == 1, done.stderr  # nothing backed up yet: needs attention
    assert shown[0] == "app (generic): NEEDS ATTENTION"
    assert any("No verified backup yet" in line for line in shown)
    assert _heavy(modules) == []
    assert "backupbot.storage.state" in modules  # it did open the state database
    assert "alembic" not in modules  # a migrated database is not migrated again

    as_json = _status(config, "app", "--json")
    code, modules, shown = _loaded(as_json)
    assert code == 1 and json.loads("\n".join(shown))[0]["database"] == "app"
    assert _heavy(modules) == []


def test_status_still_validates_the_sections_it_does_not_read(tmp_path: Path) -> None:
    config = _config(tmp_path, escalation={"levels": [{"after_minutes": -5}]})
    done = _status(config)
    assert done.returncode == 2, done.stderr
    assert "escalation" in done.stderr and "backupbot.yml is invalid" in done.stderr


def test_status_checks_backup_encryption_keys_though_it_never_encrypts(tmp_path: Path) -> None:
    config = _config(tmp_path, backup={"encrypt_to": ["age1notakey"]})
    done = _status(config)
    assert done.returncode == 2, done.stderr
    assert "backup.encrypt_to" in done.stderr and "age" in done.stderr
