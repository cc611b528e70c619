"""What the load benchmarks share: a throwaway PostgreSQL cluster, a deployment written the
way the README shows (config file, exported variables, the real `backupbot serve` and
`backupbot worker` processes), the state database read from the outside, and statistics.

Used by `bench/interactive_bench.py` and `bench/queue_bench.py`; not a test helper (the
acceptance suite has its own harness).
"""

from __future__ import annotations

import math
import os
import platform
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from backupbot.devkit.botserver import free_port
from backupbot.devkit.pgcluster import PgCluster, find_pg_bin_dir
from backupbot.devkit.serve_process import (
    ServeFailed,
    ServeProcess,
    backupbot_executable,
    user_environment,
    write_config,
)
from backupbot.devkit.slack_signer import SignedSlackClient
from backupbot.devkit.slack_standin import SlackStandin

CHANNEL = "C0BENCH"
REQUESTER = "U0BENCH"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def start_cluster(base: Path, *, max_connections: int = 100, loopbacks: int = 1) -> PgCluster:
    """A fresh cluster under `base` (removed first), with `max_connections`, listening
    on 127.0.0.1 .. 127.0.0.`loopbacks` (to the bot, each address is another server)."""
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    cluster = PgCluster(base, password=secrets.token_hex(8), bin_dir=find_pg_bin_dir())
    cluster.start()
    if max_connections != 100 or loopbacks > 1:
        cluster.execute(f"ALTER SYSTEM SET max_connections = {int(max_connections)}")
        if loopbacks > 1:
            addresses = ",".join(f"127.0.0.{i}" for i in range(1, loopbacks + 1))
            cluster.execute(f"ALTER SYSTEM SET listen_addresses = '{addresses}'")
            with (cluster.data_dir / "pg_hba.conf").open("a", encoding="utf-8") as hba:
                hba.write("host all all 127.0.0.0/8 scram-sha-256\n")
        cluster.stop()
        cluster.start()
    return cluster


def on_loopback(url: str, n: int) -> str:
    """`url` (on 127.0.0.1) through the loopback address 127.0.0.`n`."""
    return url.replace("@127.0.0.1:", f"@127.0.0.{n}:", 1)


def percentile(values: list[float], q: float) -> float:
    """The `q`-th percentile (0-100), nearest rank: p99 of 20 values is the largest."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def utc(value: Any) -> datetime | None:
    """A time read from the state database by raw SQL (SQLite gives naive ISO strings,
    PostgreSQL naive or aware datetimes; the bot stores UTC) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def machine() -> dict[str, Any]:
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = line.split(":", 1)[1].strip()
    except OSError:
        pass
    load = os.getloadavg()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": os.cpu_count(),
        "memory": mem,
        "load_at_start": [round(x, 2) for x in load],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "note": "2 cores shared with other sessions' work",
    }


@dataclass
class Deployment:
    """One installation in `workdir`: config, exported variables, serve and workers."""

    workdir: Path
    standin: SlackStandin
    config: dict[str, Any]
    exported: dict[str, str]
    state_url: str  # SQLAlchemy URL, as the bot opens it
    serve: ServeProcess | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _engine: Engine | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "backupbot.yml"

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_engine(self.state_url)
        return self._engine

    def start(self, workers: int = 0) -> None:
        write_config(self.config_path, self.config)
        self.serve = ServeProcess(
            self.config_path,
            user_environment(self.exported),
            port=free_port(),
            log_path=self.workdir / "serve.log",
        ).start(timeout=120)
        for n in range(workers):
            self.start_worker(n + 1)

    def start_worker(self, n: int) -> None:
        """`backupbot --config FILE worker`, ready once it logs that it runs."""
        log_path = self.workdir / f"worker-{n}.log"
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                [backupbot_executable(), "--config", str(self.config_path), "worker"],
                cwd=self.workdir,
                env=user_environment({**self.exported, "PORT": "0"}),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(proc)
        deadline = time.monotonic() + 120
        while "worker running" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None:
                raise ServeFailed(f"worker {n} exited with {proc.returncode}: {log_path}")
            if time.monotonic() > deadline:
                raise ServeFailed(f"worker {n} did not start within 120 s: {log_path}")
            time.sleep(0.1)  # polling a log file for a start-up line

    def crashed(self) -> list[str]:
        """Processes that exited on their own."""
        out = []
        if self.serve is not None and not self.serve.running():
            out.append("serve")
        out += [f"worker-{i + 1}" for i, w in enumerate(self.workers) if w.poll() is not None]
        return out

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every process, as an orchestrator stops them; their exit codes."""
        codes: dict[str, int | None] = {}
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
        for i, proc in enumerate(self.workers):
            try:
                codes[f"worker-{i + 1}"] = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[f"worker-{i + 1}"] = None
        if self.serve is not None:
            try:
                codes["serve"] = self.serve.stop(timeout=30)
            except ServeFailed:
                codes["serve"] = None
        if self._engine is not None:
            self._engine.dispose()
        return codes

    def kill(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if self.serve is not None:
            self.serve.kill()

    def client(self, timeout: float = 60.0) -> SignedSlackClient:
        assert self.serve is not None
        secret = self.exported["SLACK_SIGNING_SECRET"]
        return SignedSlackClient(self.serve.events_url, secret, self.standin, timeout=timeout)

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Rows as dicts; columns ending in `_at` or `_for` as aware UTC datetimes."""
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(text(sql), params)]
        for row in rows:
            for key in row:
                if key.endswith(("_at", "_for")):
                    row[key] = utc(row[key])
        return rows

    def log_lines(self, needle: str) -> list[str]:
        """Lines of every process's log containing `needle`."""
        found = []
        for path in sorted(self.workdir.glob("*.log")):
            for line in path.read_text(errors="replace").splitlines():
                if needle in line:
                    found.append(f"{path.name}: {line}")
        return found


def new_deployment(
    workdir: Path,
    standin: SlackStandin,
    cluster: PgCluster,
    databases: dict[str, str],
    *,
    state: str,
    extra: dict[str, Any] | None = None,
) -> Deployment:
    """A README-style config for `databases` (name -> URL, each exported as a variable),
    signed HTTP, on SQLite state (next to the config) or a fresh PostgreSQL state database
    on `cluster`."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    exported = {
        "SLACK_BOT_TOKEN": standin.bot_token,
        "SLACK_API_URL": standin.base_url,
        "SLACK_SIGNING_SECRET": secrets.token_hex(16),
    }
    if state == "postgresql":
        name = f"state_{secrets.token_hex(4)}"
        url = cluster.create_database(name).replace("postgresql://", "postgresql+psycopg://", 1)
        exported["BACKUPBOT_STATE_URL"] = url
        state_setting, state_url = "${BACKUPBOT_STATE_URL}", url
    else:
        state_setting = "sqlite:///backupbot.db"
        state_url = f"sqlite:///{workdir / 'backupbot.db'}"
    entries = []
    for name, url in databases.items():
        variable = f"{name.upper()}_DATABASE_URL"
        exported[variable] = url
        entries.append({"name": name, "url": "${" + variable + "}"})
    config: dict[str, Any] = {
        "state_url": state_setting,
        "storage": {"local": {"path": "./backups"}},
        "slack": {"channel": CHANNEL},
        "databases": entries,
        **(extra or {}),
    }
    return Deployment(workdir, standin, config, exported, state_url)


def clone_databases(cluster: PgCluster, template: str, names: list[str]) -> dict[str, str]:
    """`CREATE DATABASE name TEMPLATE template` for each name; name -> URL."""
    urls = {}
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            urls[name] = cluster.url(name)
    return urls
