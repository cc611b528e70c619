"""`backupbot serve` as a real process: HTTP mode answers health checks and signed
commands, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from backupbot.devkit.slack_signer import SignedSlackClient
from backupbot.devkit.slack_standin import SlackStandin
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, free_port


def test_serve_runs_http_mode_until_sigterm(
    tmp_path: Path, sample_db: dict[str, Any], slack: SlackStandin
) -> None:
    config = tmp_path / "backupbot.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_url": f"sqlite:///{tmp_path}/state.db",
                "storage": {"local": {"path": str(tmp_path / "backups")}},
                "slack": {"channel": "C0SERVE"},
                "databases": [{"name": "app", "url": "${APP_DATABASE_URL}"}],
                "logging": {"format": "text", "level": "INFO"},
            }
        )
    )
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SLACK_")},
        "APP_DATABASE_URL": sample_db["url"],
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.base_url,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backupbot.bot.cli.main",
            "--config",
            str(config),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        wanted = {"serving Slack events over HTTP", "this process now runs the schedules"}
        for line in proc.stderr:  # wait until it listens and leads the scheduler
            seen.append(line)
            wanted = {w for w in wanted if w not in line}
            if not wanted:
                break
        else:
            raise AssertionError("serve exited early:\n" + "".join(seen))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert resp.status == 200
        signer = SignedSlackClient(f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, slack)
        body = signer.slash_command("UALICE", "help", channel_id="C0SERVE").json()
        assert "/backup now" in body["text"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        # APScheduler's job store is in the state database: one job per schedule
        with sqlite3.connect(tmp_path / "state.db") as db:
            jobs = {row[0] for row in db.execute("SELECT id FROM apscheduler_jobs")}
        assert jobs == {"backup:app", "retention", "drill", "checklist", "housekeeping"}
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
