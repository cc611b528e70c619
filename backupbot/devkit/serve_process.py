"""`backupbot serve` as a user runs it: a separate process, started from a config file.

The demo and the acceptance tests use this instead of building the bot in-process, so
what they exercise is what a user deploys: the installed `backupbot` console script, the
config file's own defaults (logging at INFO as JSON lines included), the environment a
user exports, and Slack reached over the wire (HTTP with signed requests, or Socket Mode).

`write_config` writes the YAML the README shows; `ServeProcess` starts, waits for and
stops the process, and reads its JSON log.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

# What a user's shell would have besides the variables they export for backupbot.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "USER", "LOGNAME")


def backupbot_executable() -> str:
    """The installed `backupbot` console script beside this interpreter (the venv's)."""
    beside = Path(sys.executable).with_name("backupbot")
    if beside.is_file():
        return str(beside)
    found = shutil.which("backupbot")
    if found is None:
        raise RuntimeError("the backupbot command is not installed: pip install -e .")
    return found


def write_config(path: Path, config: Mapping[str, Any]) -> Path:
    """Write `config` as the YAML file a user would keep (`${VAR}`s left for the bot)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    return path


def user_environment(exported: Mapping[str, str]) -> dict[str, str]:
    """A login shell's basics plus what the user exported; nothing else of ours leaks in."""
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env.update(exported)
    return env


class ServeFailed(RuntimeError):
    """The process did not come up, or did not stop in time; the message has its log."""


class ServeProcess:
    """`backupbot --config CONFIG serve --port PORT` with `env` as its whole environment
    (`command="worker"`: a `backupbot worker`, which serves /healthz on the port too)."""

    def __init__(
        self,
        config: Path,
        env: Mapping[str, str],
        *,
        port: int,
        log_path: Path,
        cwd: Path | None = None,
        command: str = "serve",
    ) -> None:
        self.command = command
        self.config = config
        self.env = dict(env)
        self.port = port
        self.log_path = log_path
        self.cwd = cwd or config.parent
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def events_url(self) -> str:
        return f"{self.url}/slack/events"

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    def start(self, timeout: float = 60.0) -> ServeProcess:
        """Start the process and wait until `/healthz` answers 200."""
        argv = [backupbot_executable(), "--config", str(self.config), self.command]
        argv += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self._healthy():
            if self._proc.poll() is not None:
                raise ServeFailed(f"backupbot {self.command} exited with {self._proc.returncode}")
            if time.monotonic() > deadline:
                raise ServeFailed(
                    f"backupbot {self.command} did not answer /healthz in {timeout:.0f} s"
                )
            time.sleep(0.05)  # polling the health endpoint, as a load balancer does
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, as systemd, Docker and Kubernetes stop it; its exit code. Raises
        `ServeFailed` (after killing it) if it is still running after `timeout`."""
        if self._proc is None:
            return 0
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ServeFailed(
                f"backupbot serve did not exit within {timeout:.0f} s of SIGTERM"
            ) from None

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines; any other line (a crash before logging was set up) as
        `{"raw": line}`."""
        records: list[dict[str, Any]] = []
        for line in self.log_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            records.append(entry if isinstance(entry, dict) else {"raw": line})
        return records

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(ServeFailed):
            self.stop()
