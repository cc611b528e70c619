"""`backupbot config check --live`, the real CLI process, reaches a database's provider
API (here Neon's stand-in) with the key from the environment: one line per provider,
OK with what the API says, or FAILED with the provider's answer, and never the key."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backupbot.devkit.providers.databases import ClusterDatabases
from backupbot.devkit.providers.neon import NeonStandIn
from backupbot.devkit.serve_process import backupbot_executable, user_environment, write_config
from tests.conftest import PG_PASSWORD

KEY = "napi_" + secrets.token_hex(16)


@pytest.fixture
def neon(pg: Any, sample_db: dict[str, Any]) -> Iterator[NeonStandIn]:
    databases = ClusterDatabases(pg.url("postgres"), {datetime.now(UTC): sample_db["name"]})
    server = NeonStandIn(KEY, databases, database=sample_db["name"]).start()
    yield server
    server.close()


def _check(
    tmp_path: Path, neon: NeonStandIn, url: str, key: str
) -> subprocess.CompletedProcess[str]:
    config = {
        "storage": {"local": {"path": str(tmp_path / "backups")}},
        "state_url": f"sqlite:///{tmp_path / 'state.db'}",
        "databases": [
            {
                "name": "app",
                "url": "${APP_DATABASE_URL}",
                "provider": "neon",
                "neon": {
                    "api_url": neon.url,
                    "project_id": neon.project_id,
                    "branch_id": next(iter(neon.branches)),
                    "api_key": "${NEON_API_KEY}",
                },
            }
        ],
    }
    path = write_config(tmp_path / "backupbot.yml", config)
    env = user_environment({"APP_DATABASE_URL": url, "NEON_API_KEY": key})
    return subprocess.run(
        [backupbot_executable(), "--config", str(path), "config", "check", "--live"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_config_check_live_reaches_the_provider(
    tmp_path: Path, neon: NeonStandIn, sample_db: dict[str, Any]
) -> None:
    result = _check(tmp_path, neon, sample_db["url"], KEY)
    out = result.stdout + result.stderr
    assert "app provider neon OK: project app, branch main, history kept 7 days" in result.stdout, (
        out
    )
    assert any(r.path.endswith(f"/projects/{neon.project_id}") for r in neon.requests)
    assert KEY not in out and PG_PASSWORD not in out


def test_config_check_live_says_when_the_key_is_refused(
    tmp_path: Path, neon: NeonStandIn, sample_db: dict[str, Any]
) -> None:
    wrong = "napi_" + secrets.token_hex(16)
    result = _check(tmp_path, neon, sample_db["url"], wrong)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    failed = [line for line in result.stdout.splitlines() if line.startswith("app provider neon")]
    assert len(failed) == 1 and failed[0].startswith(
        "app provider neon FAILED: neon's API answered 401"
    )
    assert "api_key" in failed[0], failed[0]
    assert wrong not in out and KEY not in out and PG_PASSWORD not in out
