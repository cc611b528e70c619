"""Tests for the throwaway PostgreSQL cluster and the sample data/fingerprint helpers."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from backupbot.devkit.pgcluster import PgCluster, PgUnavailable, find_pg_bin_dir
from backupbot.devkit.sample_data import database_fingerprint, load_sample_data, row_counts
from tests.conftest import cluster_dir

# Characters that must be URL-quoted, plus non-ASCII, to exercise url().
PASSWORD = "s3cr:t/@%é pw"
NON_ASCII = "Zoë — 東京 — Łódź — 👍"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    try:
        bin_dir = find_pg_bin_dir()
    except PgUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    with cluster_dir("pgcluster") as path:
        pg = PgCluster(path, password=PASSWORD, bin_dir=bin_dir)
        with pg:
            yield pg
        pg.stop()  # idempotent: a second stop is a no-op
        assert not (pg.data_dir / "postmaster.pid").exists()


@pytest.fixture(scope="module")
def sample_pair(cluster: PgCluster) -> tuple[str, str, dict[str, int]]:
    """Two databases loaded identically with the sample data."""
    url_a = cluster.create_database("sample_a")
    url_b = cluster.create_database("sample_b")
    counts = load_sample_data(url_a)
    load_sample_data(url_b)
    return url_a, url_b, counts


def _postmaster_pid(cluster: PgCluster) -> int:
    return int((cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])


def test_answers_over_tcp_with_password(cluster: PgCluster) -> None:
    assert cluster.host == "127.0.0.1"
    assert cluster.url("db").endswith(f"@127.0.0.1:{cluster.port}/db")
    assert "%40" in cluster.url() and PASSWORD not in cluster.url()
    with psycopg.connect(cluster.url(), connect_timeout=10) as conn:
        user, addr, port = conn.execute(
            "SELECT current_user, host(inet_server_addr()), inet_server_port()"
        ).fetchone()  # type: ignore[misc]
    assert (user, addr, port) == ("postgres", "127.0.0.1", cluster.port)
    assert cluster.server_version_num >= 100000
    assert (cluster.base_dir / "postgres.log").is_file()


def test_server_runs_as_postgres_user_when_root(cluster: PgCluster) -> None:
    pg_uid = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    pid = _postmaster_pid(cluster)
    assert os.stat(f"/proc/{pid}").st_uid == pg_uid
    assert cluster.data_dir.stat().st_uid == pg_uid
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
    assert PASSWORD not in cmdline


def test_wrong_password_is_refused(cluster: PgCluster) -> None:
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.url(password="not-the-password"), connect_timeout=10)


def test_create_and_drop_database(cluster: PgCluster) -> None:
    url = cluster.create_database("scratch db")
    cluster.execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1)", "scratch db")
    assert row_counts(url) == {"public.t": 1}
    assert cluster.create_database("scratch db") == url  # recreated empty
    assert row_counts(url) == {}
    with psycopg.connect(url):  # an open session does not block the drop
        cluster.drop_database("scratch db")
    cluster.drop_database("scratch db")  # absent: no error
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=10)


def test_load_sample_data_counts(sample_pair: tuple[str, str, dict[str, int]]) -> None:
    url_a, _, counts = sample_pair
    assert counts == row_counts(url_a)
    expected_tables = {
        "User",
        "Profile",
        "Opportunity",
        "WalkInDetails",
        "UserAction",
        "ListingFeedback",
        "Admin",
        "AdminAudit",
        "_prisma_migrations",
    }
    assert set(counts) == {f"public.{name}" for name in expected_tables}
    assert counts["public._prisma_migrations"] == 3
    assert all(n > 0 for n in counts.values())
    assert 200 <= sum(counts.values()) <= 1000


def test_fingerprint_equal_then_differs_after_update(
    cluster: PgCluster, sample_pair: tuple[str, str, dict[str, int]]
) -> None:
    url_a, url_b, _ = sample_pair
    fp_a = database_fingerprint(url_a)
    assert fp_a == database_fingerprint(url_b)
    assert database_fingerprint(url_a, digest_rows=True) == database_fingerprint(
        url_b, digest_rows=True
    )
    role = next(c for c in fp_a["tables"]["public.User"]["columns"] if c["name"] == "role")
    assert role["type"] == 'public."Role"'
    assert fp_a["enums"]["public.ActionType"][0] == "VIEW"
    assert "public.ActiveOpportunity" in fp_a["views"]
    assert fp_a["sequences"]["public.InviteCode_seq"]["is_called"] is False

    scratch = cluster.create_database("sample_c")
    load_sample_data(scratch)
    cluster.execute(
        """UPDATE "Opportunity" SET "title" = "title" || '!'
           WHERE "id" = (SELECT "id" FROM "Opportunity" ORDER BY "id" LIMIT 1)""",
        "sample_c",
    )
    changed = database_fingerprint(scratch)
    assert changed != fp_a
    assert changed["rows"]["public.Opportunity"] != fp_a["rows"]["public.Opportunity"]
    assert {k: v for k, v in changed.items() if k != "rows"} == {
        k: v for k, v in fp_a.items() if k != "rows"
    }
    assert database_fingerprint(scratch, digest_rows=True) != database_fingerprint(
        url_a, digest_rows=True
    )

    cluster.execute("""SELECT setval('"InviteCode_seq"', 500, true)""", "sample_c")
    assert (
        database_fingerprint(scratch)["sequences"]["public.InviteCode_seq"]
        != fp_a["sequences"]["public.InviteCode_seq"]
    )
    cluster.drop_database("sample_c")


def test_non_ascii_round_trips(
    cluster: PgCluster, sample_pair: tuple[str, str, dict[str, int]]
) -> None:
    url_a, _, _ = sample_pair
    with psycopg.connect(url_a) as conn:
        assert conn.execute("SELECT %s::text", [NON_ASCII]).fetchone() == (NON_ASCII,)
        names = {r[0] for r in conn.execute('SELECT "name" FROM "User" WHERE "name" IS NOT NULL')}
        cities = {r[0] for r in conn.execute('SELECT "city" FROM "Profile"')}
        encoding = conn.execute("SHOW server_encoding").fetchone()
    assert encoding == ("UTF8",)
    assert any(name.startswith("Zoë ") for name in names)
    assert {"東京", "Łódź", None} <= cities
    rows = database_fingerprint(url_a)["rows"]["public.ListingFeedback"]
    assert any("👍 Great listing" in row for row in rows)


def test_fingerprint_survives_pg_dump_restore(
    cluster: PgCluster, sample_pair: tuple[str, str, dict[str, int]], tmp_path: Path
) -> None:
    assert cluster.bin_dir is not None
    pg_dump, pg_restore = cluster.bin_dir / "pg_dump", cluster.bin_dir / "pg_restore"
    if not (pg_dump.is_file() and pg_restore.is_file()):
        pytest.fail("pg_dump/pg_restore not installed: apt-get install -y postgresql-client")
    url_a, _, _ = sample_pair
    restored = cluster.create_database("restored")
    env = {**os.environ, "PGPASSWORD": cluster.password}
    no_pw = cluster.url("sample_a", password="").replace(":@", "@")
    dump = tmp_path / "sample.dump"
    subprocess.run([pg_dump, "-Fc", "-f", dump, "-d", no_pw], env=env, check=True, timeout=120)
    subprocess.run(
        [pg_restore, "--no-owner", "-d", no_pw.replace("/sample_a", "/restored"), dump],
        env=env,
        check=True,
        timeout=120,
    )
    assert database_fingerprint(restored) == database_fingerprint(url_a)
    cluster.drop_database("restored")


def test_find_pg_bin_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PG_BIN_DIR", str(tmp_path))
    with pytest.raises(PgUnavailable, match="apt-get install"):
        find_pg_bin_dir()
    if shutil.which("initdb") or Path("/usr/lib/postgresql").is_dir():
        monkeypatch.delenv("PG_BIN_DIR")
        assert (find_pg_bin_dir() / "initdb").is_file()
