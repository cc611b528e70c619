"""`backupbot config check` shows where everything is, and the paths in a config file mean
relative to that file, wherever the command runs (cron runs it from `/` or `$HOME`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from backupbot.bot.cli.main import main

BACKUPBOT = Path(sys.executable).with_name("backupbot")


def _run(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The installed console script, run from `cwd`, as cron or an operator would."""
    if not BACKUPBOT.exists():
        pytest.fail(f"{BACKUPBOT} is missing: pip install -e '.[test]'", pytrace=False)
    return subprocess.run(
        [str(BACKUPBOT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _env(**extra: str) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SLACK_") and k not in ("BACKUPBOT_CONFIG", "APP_DATABASE_URL")
    }
    return {**keep, **extra}


def _lines(out: str, prefix: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(prefix)]


def test_commands_run_from_another_directory_use_the_config_files_directory(
    tmp_path: Path, sample_db: dict[str, Any]
) -> None:
    conf = tmp_path / "etc" / "backupbot"
    conf.mkdir(parents=True)
    config = conf / "backupbot.yml"
    config.write_text(
        # no state_url: the default sqlite:///backupbot.db, i.e. next to this file
        "storage:\n  local:\n    path: ./backups\n"
        "restore:\n  work_dir: work\n"
        "databases:\n  - name: app\n    url: ${APP_DATABASE_URL}\n",
        encoding="utf-8",
    )
    cron_cwd, operator_cwd = tmp_path / "cron", tmp_path / "home" / "ops"
    cron_cwd.mkdir()
    operator_cwd.mkdir(parents=True)
    env = _env(APP_DATABASE_URL=sample_db["url"])

    check = _run(cron_cwd, "--config", str(config), "config", "check", env=env)

    assert check.returncode == 0, check.stderr
    assert _lines(check.stdout, "config file: ") == [f"config file: {config}"]
    assert _lines(check.stdout, "state database: ") == [
        f"state database: {conf / 'backupbot.db'} (SQLite, does not exist yet)"
    ]
    assert _lines(check.stdout, "store: ") == [f"store: local directory {conf / 'backups'}"]
    assert _lines(check.stdout, "restore work dir: ") == [f"restore work dir: {conf / 'work'}"]

    before = _run(operator_cwd, "--config", str(config), "status", "app", env=env)
    assert "last good backup: never" in before.stdout, before.stderr

    backup = _run(cron_cwd, "--config", str(config), "backup", "now", "app", env=env)
    assert backup.returncode == 0, backup.stderr
    backup_id = backup.stdout.strip()

    after = _run(operator_cwd, "--config", str(config), "status", "app", env=env)
    assert f"id {backup_id}" in after.stdout, after.stdout + after.stderr
    assert "last good backup: never" not in after.stdout

    assert (conf / "backupbot.db").is_file()
    assert any(p.is_file() for p in (conf / "backups").rglob("*"))
    assert list(cron_cwd.iterdir()) == []  # no stray state database or backups here
    assert list(operator_cwd.iterdir()) == []
    recheck = _run(operator_cwd, "--config", str(config), "config", "check", env=env)
    assert _lines(recheck.stdout, "state database: ") == [
        f"state database: {conf / 'backupbot.db'} (SQLite)"
    ]


def test_a_config_without_storage_fails_with_the_key_and_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "backupbot.yml"
    config.write_text("databases:\n  - name: app\n    url: postgresql://u@h/app\n")

    result = _run(tmp_path, "--config", str(config), "config", "check", env=_env())

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {config} is invalid:\n"
        "  - storage: required; add storage.local.path (a directory) or storage.s3.bucket\n"
    )


def test_config_check_shows_the_state_url_and_s3_store_without_any_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = {
        "STATE_PW": "state-pw-9f3k",
        "DB_PW": "db-pw-1q7z",
        "S3_KEY": "AKIAEXAMPLE77",
        "S3_SECRET": "s3-secret-4h8d",
        "PROXY_PW": "proxy-pw-2m5t",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    cfg = {
        "state_url": "postgresql+psycopg://bot:${STATE_PW}@state.internal:5432/backupbot",
        "storage": {
            "s3": {
                "bucket": "team-backups",
                "prefix": "prod",
                "region": "eu-west-1",
                "endpoint_url": "https://minio:${PROXY_PW}@s3.internal:9000",
                "access_key_id": "${S3_KEY}",
                "secret_access_key": "${S3_SECRET}",
            }
        },
        "restore": {"work_dir": "/var/tmp/backupbot"},
        "backup": {"pg_bin_dirs": ["pg16/bin"]},
        "databases": [{"name": "app", "url": "postgresql://app:${DB_PW}@db.internal/app"}],
    }
    config = tmp_path / "backupbot.yml"
    config.write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path.parent)

    assert main(["--config", str(config), "config", "check"]) == 0

    out, err = capsys.readouterr()
    for value in secrets.values():
        assert value not in out + err
    assert _lines(out, "state database: ") == [
        "state database: postgresql+psycopg://bot:***@state.internal:5432/backupbot"
    ]
    assert _lines(out, "store: ") == [
        "store: S3 bucket team-backups, prefix prod/, endpoint "
        "https://minio:***@s3.internal:9000, region eu-west-1"
    ]
    assert _lines(out, "restore work dir: ") == ["restore work dir: /var/tmp/backupbot"]
    assert _lines(out, "pg_dump/pg_restore also looked for in: ") == [
        f"pg_dump/pg_restore also looked for in: {tmp_path / 'pg16' / 'bin'}"
    ]


def test_config_check_names_the_default_work_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "backupbot.yml"
    config.write_text(
        "state_url: 'sqlite://'\nstorage:\n  local: {path: /srv/backups}\n"
        "databases:\n  - name: app\n    url: postgresql://u@h/app\n"
    )

    assert main(["--config", str(config), "config", "check"]) == 0

    out = capsys.readouterr().out
    assert _lines(out, "state database: ") == ["state database: sqlite://"]
    assert _lines(out, "store: ") == ["store: local directory /srv/backups"]
    [work] = _lines(out, "restore work dir: ")
    assert work.endswith(" (default: $TMPDIR)")
