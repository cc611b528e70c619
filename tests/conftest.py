"""Shared fixtures: a real PostgreSQL cluster, an S3 server (moto over HTTP), the Slack
stand-in, and a running bot that receives signed requests over HTTP.

A missing service fails the run with an install hint; nothing is skipped.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import psycopg
import pytest

from backupbot.bot.composition import build_services
from backupbot.bot.logging_setup import configure_logging
from backupbot.bot.services import Services
from backupbot.bot.slack import delivery
from backupbot.bot.slack.flows import Flows
from backupbot.bot.slack.flows.restore import RestoreFlow
from backupbot.clock import Clock
from backupbot.devkit.botserver import free_port, start_http_bot
from backupbot.devkit.pgcluster import PgCluster, PgUnavailable
from backupbot.devkit.sample_data import load_sample_data
from backupbot.devkit.slack_signer import SignedSlackClient
from backupbot.devkit.slack_standin import SlackStandin
from backupbot.settings import Settings, parse_settings

CHANNEL = "C0BACKUPS"
SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
PG_PASSWORD = "pw-" + secrets.token_hex(8)  # distinctive, so leak checks can search for it


class ExternalServer:
    """A server given by TEST_DATABASE_URL, with the same helpers as `PgCluster`."""

    def __init__(self, url: str) -> None:
        self._url = url
        parts = urlsplit(url)
        self.password = parts.password or ""

    def url(self, dbname: str = "postgres", *, password: str | None = None) -> str:
        parts = urlsplit(self._url)
        netloc = parts.netloc
        if password is not None:
            user, host = netloc.rsplit("@", 1)
            netloc = f"{user.split(':', 1)[0]}:{password}@{host}"
        return urlunsplit((parts.scheme, netloc, f"/{dbname}", parts.query, ""))

    def create_database(self, name: str) -> str:
        self.drop_database(name)
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def stop(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _production_logging() -> None:
    """Every test runs under `serve`'s logging (JSON lines), at DEBUG, so every log call
    in the code executes: a call that only breaks when its level is on breaks here."""
    configure_logging("DEBUG", "json")


@pytest.fixture(autouse=True)
def _fresh_delivery_health() -> Iterator[None]:
    """Slack delivery problems are noted process-wide (for /healthz): none carry over
    from one test to the next."""
    delivery.HEALTH.clear()
    yield
    delivery.HEALTH.clear()


@contextlib.contextmanager
def cluster_dir(name: str) -> Iterator[Path]:
    """A directory for a test PostgreSQL cluster, outside pytest's temporary root: as
    root the server runs as `postgres`, which must traverse the path, and every pytest
    start resets `/tmp/pytest-of-<user>` to 0700 (a second pytest run on the machine
    would cut a running cluster off its own files)."""
    path = Path(tempfile.mkdtemp(prefix=f"backupbot-{name}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg() -> Iterator[Any]:
    """The PostgreSQL server: TEST_DATABASE_URL if set, else a throwaway cluster."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield ExternalServer(os.environ["TEST_DATABASE_URL"])
        return
    with cluster_dir("pg") as path:
        yield from _session_cluster(path)


def _session_cluster(path: Path) -> Iterator[Any]:
    try:
        cluster = PgCluster(path, password=PG_PASSWORD).start()
    except PgUnavailable as exc:
        pytest.fail(
            f"{exc}\nThe tests need a real PostgreSQL server: install it (apt-get install -y "
            "postgresql) or set TEST_DATABASE_URL.",
            pytrace=False,
        )
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def sample_db(pg: Any) -> dict[str, Any]:
    """A database built from the runbook's tables; its URL and row counts. Do not modify."""
    # one per xdist worker: with TEST_DATABASE_URL the workers share a server
    name = f"app_sample_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    url = pg.create_database(name)
    counts = load_sample_data(url)
    return {"url": url, "counts": counts, "name": name}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        pytest.fail("moto's server is missing: pip install 'moto[server]'", pytrace=False)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _aws_test_credentials() -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"backups-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=name)
    return name


def s3_keys(s3: Any, bucket: str) -> list[str]:
    resp = s3.list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in resp.get("Contents", []))


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path, pg: Any) -> Iterator[str]:
    """The bot's own state database: both supported kinds."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    name = f"state_{secrets.token_hex(4)}"
    url = pg.create_database(name)
    yield url.replace("postgresql://", "postgresql+psycopg://", 1)
    pg.drop_database(name)


def make_settings(
    *,
    databases: list[dict[str, Any]],
    state_url: str,
    storage: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Settings:
    raw = {
        "state_url": state_url,
        "storage": storage,
        "slack": {"channel": CHANNEL, "approvers": ["UAPPROVER"]},
        "databases": databases,
        **(extra or {}),
    }
    return parse_settings(raw, os.environ)


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    with SlackStandin(bot_token=BOT_TOKEN) as standin:
        yield standin


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Re-check `predicate` until it holds or `timeout` passes (work in other threads or
    processes, which tells us nothing when it is done)."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        tick.wait(0.05)
    return True


@dataclass
class RunningBot:
    services: Services
    standin: SlackStandin
    signer: SignedSlackClient
    url: str

    @property
    def flow(self) -> RestoreFlow:
        """The restore flow as `serve`'s sweeps run it (expiry, break-glass notices)."""
        assert self.services.slack_client is not None
        return Flows(self.services, self.services.slack_client).restore

    def wait_idle(self, timeout: float = 120) -> None:
        assert self.services.wait_idle(timeout), "background jobs did not finish in time"


def clicked_while_posting(bot: RunningBot, click: Callable[[dict[str, Any]], Any]) -> Any:
    """A Web API client of `bot`'s stand-in that runs `click(message)` the moment a
    top-level message is posted, before the poster has recorded where it is: a person's
    click arriving as fast as Slack can deliver it."""
    from slack_sdk import WebClient

    class ClickedAtOnce(WebClient):
        def chat_postMessage(self, **kwargs: Any) -> Any:
            response = super().chat_postMessage(**kwargs)
            if not kwargs.get("thread_ts"):
                click(kwargs)
            return response

    client = bot.services.slack_client
    assert client is not None
    return ClickedAtOnce(token=client.token, base_url=client.base_url)


class ManualClock:
    """A clock tests move by hand (`advance`); it never moves on its own."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


def start_bot(
    settings: Settings, standin: SlackStandin, clock: Clock | None = None
) -> tuple[RunningBot, Any]:
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": standin.base_url,
    }
    services = build_services(settings, env, clock=clock)
    url, server = start_http_bot(services)
    signer = SignedSlackClient(f"{url}/slack/events", SIGNING_SECRET, standin=standin)
    signer.channel_id = settings.slack.channel if settings.slack else CHANNEL
    return RunningBot(services, standin, signer, url), server


@pytest.fixture
def bot_factory(slack: SlackStandin) -> Iterator[Any]:
    """Start a bot for given settings; stopped after the test."""
    started: list[tuple[RunningBot, Any]] = []

    def factory(settings: Settings, clock: Clock | None = None) -> RunningBot:
        bot, server = start_bot(settings, slack, clock)
        started.append((bot, server))
        return bot

    yield factory
    for bot, server in started:
        # A test's own state database may already be dropped (fixtures end in reverse
        # order): then nothing can be queued there any more.
        with contextlib.suppress(psycopg.OperationalError):
            bot.services.wait_idle(60)
        server.close()
        bot.services.close()
