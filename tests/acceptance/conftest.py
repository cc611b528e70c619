"""Fixtures of the production-parity suite: every test here talks to a real `backupbot
serve` process over the wire, on each transport (HTTP, Socket Mode) and each kind of state
database (SQLite, PostgreSQL).

The PostgreSQL cluster (`pg`) comes from the suite's top-level conftest.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from backupbot.devkit.s3_fault_proxy import S3FaultProxy
from backupbot.devkit.sample_data import load_sample_data
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.harness import Deployment, new_deployment

KINDS = [
    pytest.param(("http", "sqlite"), id="http-sqlite"),
    pytest.param(("http", "postgresql"), id="http-pg"),
    pytest.param(("socket", "sqlite"), id="socket-sqlite"),
    pytest.param(("socket", "postgresql"), id="socket-pg"),
]


@pytest.fixture(params=KINDS, scope="module")
def kind(request: pytest.FixtureRequest) -> tuple[str, str]:
    return tuple(request.param)  # type: ignore[return-value]


def source_database(pg: Any, prefix: str = "app") -> tuple[str, dict[str, int]]:
    """A fresh database with the runbook's sample tables: its URL and row counts."""
    url = pg.create_database(f"{prefix}_{secrets.token_hex(4)}")
    return url, load_sample_data(url)


@pytest.fixture(scope="module")
def standin_module() -> Iterator[SlackStandin]:
    with SlackStandin() as standin:
        yield standin


@pytest.fixture(scope="module")
def deployment(
    kind: tuple[str, str],
    pg: Any,
    standin_module: SlackStandin,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """One running installation for a module's tests, with database `app` (sample data)."""
    url, _counts = source_database(pg)
    transport, state_kind = kind
    dep = new_deployment(
        transport=transport,
        state_kind=state_kind,
        workdir=tmp_path_factory.mktemp(f"deploy-{transport}-{state_kind}"),
        standin=standin_module,
        pg=pg,
        databases={"app": url},
    )
    dep.start()
    yield dep
    dep.close()


def fresh_deployment(
    kind: tuple[str, str], pg: Any, standin: SlackStandin, workdir: Path, **kwargs: Any
) -> Deployment:
    transport, state_kind = kind
    return new_deployment(
        transport=transport,
        state_kind=state_kind,
        workdir=workdir,
        standin=standin,
        pg=pg,
        **kwargs,
    )


def workerless_deployment(
    pg: Any, standin: SlackStandin, workdir: Path, databases: dict[str, str], **jobs: Any
) -> Deployment:
    """A deployment on PostgreSQL state whose serve runs no jobs
    (`jobs.in_process_worker: false`, plus any other `jobs` settings): the test starts
    `backupbot worker` processes for that. Not started yet."""
    return fresh_deployment(
        ("http", "postgresql"),
        pg,
        standin,
        workdir,
        databases=databases,
        extra={"jobs": {"in_process_worker": False, **jobs}},
    )


@pytest.fixture
def own_deployment(
    kind: tuple[str, str], pg: Any, tmp_path: Path
) -> Iterator[tuple[Deployment, str]]:
    """A deployment of one database, `app`, for a test that stops or kills its serve;
    with the source database's URL."""
    url, _counts = source_database(pg)
    with SlackStandin() as standin:
        dep = fresh_deployment(kind, pg, standin, tmp_path / "deploy", databases={"app": url})
        dep.start()
        yield dep, url
        dep.close()


# -- S3 through the fault proxy (`s3_world.py`) --------------------------------------------


@pytest.fixture(scope="module")
def moto(s3_endpoint: str) -> Any:
    """A client of moto itself, not of the proxy: what is really in the bucket."""
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture(scope="module")
def fault_bucket(moto: Any) -> str:
    name = f"faults-{secrets.token_hex(4)}"
    moto.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def proxy(s3_endpoint: str) -> Iterator[S3FaultProxy]:
    with S3FaultProxy(s3_endpoint) as started:
        yield started


@pytest.fixture
def cleared_proxy(proxy: S3FaultProxy) -> Iterator[S3FaultProxy]:
    """The proxy with no faults and no requests seen, cleared again after the test."""
    proxy.clear()
    proxy.forget()
    yield proxy
    proxy.clear()
