"""The connection pitfalls of managed PostgreSQL that a URL and `provider:` show by
themselves (settings/connection_advice.py), and the sslmode the bot connects with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backupbot.settings.connection_advice import (
    direct_host,
    pitfalls,
    shares_snapshot,
    url_pitfalls,
    with_provider_sslmode,
)
from backupbot.settings.loading import parse_settings
from backupbot.storage.pgconn import ConnInfo

NEON_POOLER = "postgresql://app:pw@ep-quiet-lake-a1b2c3-pooler.us-east-2.aws.neon.tech/neondb"
NEON_DIRECT = "postgresql://app:pw@ep-quiet-lake-a1b2c3.us-east-2.aws.neon.tech/neondb"
SUPABASE_TX = (
    "postgresql://postgres.abcdefghij:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres"
)
SUPABASE_SESSION = (
    "postgresql://postgres.abcdefghij:pw@aws-0-eu-central-1.pooler.supabase.com:5432/postgres"
)


def test_neon_pooler_host_names_the_direct_host() -> None:
    assert direct_host(NEON_POOLER, "neon") == "ep-quiet-lake-a1b2c3.us-east-2.aws.neon.tech:5432"
    # recognised by the host even when provider: is left generic
    assert direct_host(NEON_POOLER, "generic") == (
        "ep-quiet-lake-a1b2c3.us-east-2.aws.neon.tech:5432"
    )
    assert direct_host(NEON_DIRECT, "neon") is None


def test_supabase_transaction_pooler_names_the_direct_host_and_the_session_pooler() -> None:
    assert direct_host(SUPABASE_TX, "supabase") == (
        "db.abcdefghij.supabase.co:5432 (or the session pooler, "
        "aws-0-eu-central-1.pooler.supabase.com:5432)"
    )
    # the session pooler (5432) keeps a backend per client: pg_dump can use it
    assert direct_host(SUPABASE_SESSION, "supabase") is None


def test_port_6543_of_a_supabase_database_is_the_transaction_pooler() -> None:
    url = "postgresql://postgres:pw@db.abcdefghij.supabase.co:6543/postgres"
    assert direct_host(url, "supabase") == "db.<project-ref>.supabase.co:5432"
    assert direct_host(url, "generic") is None  # another server's 6543 is just a port


def test_the_pooler_warning_names_the_database_the_fix_and_what_the_backup_does() -> None:
    [pitfall] = url_pitfalls("app", NEON_POOLER, "neon")
    assert pitfall.kind == "pooler"
    assert "app is reached through a transaction pooler" in pitfall.text
    assert "connect to the direct host ep-quiet-lake-a1b2c3.us-east-2.aws.neon.tech:5432" in (
        pitfall.text
    )
    assert "count rows separately" in pitfall.text
    assert "pw" not in pitfall.text.split()


def test_a_pooler_the_server_showed_is_named_without_a_host_to_suggest() -> None:
    url = "postgresql://app:pw@127.0.0.1:6432/app"
    assert url_pitfalls("app", url, "generic") == []
    [pitfall] = pitfalls("app", url, "generic", pooled=True)
    assert pitfall.kind == "pooler"
    assert "the database's direct host and port" in pitfall.text
    # named once when both the URL and the server show it
    assert [p.kind for p in pitfalls("app", NEON_POOLER, "neon", pooled=True)] == ["pooler"]


def test_a_refused_snapshot_export_is_a_warning() -> None:
    url = "postgresql://app:pw@db.example.com/app"
    [pitfall] = pitfalls("app", url, "generic", export_error="cannot export a snapshot here")
    assert pitfall.kind == "snapshot"
    assert "(cannot export a snapshot here)" in pitfall.text
    assert "taken separately" in pitfall.text


def test_the_snapshot_is_shared_only_away_from_poolers() -> None:
    assert shares_snapshot(NEON_DIRECT, "neon", pooled=False)
    assert not shares_snapshot(NEON_DIRECT, "neon", pooled=True)
    assert not shares_snapshot(NEON_POOLER, "neon", pooled=False)
    assert not shares_snapshot(SUPABASE_TX, "supabase", pooled=False)
    assert shares_snapshot(SUPABASE_SESSION, "supabase", pooled=False)


@pytest.mark.parametrize("provider", ["neon", "supabase", "render"])
def test_tls_providers_get_sslmode_require_when_the_url_names_none(provider: str) -> None:
    assert with_provider_sslmode("postgresql://u:p@h/db", provider) == (
        "postgresql://u:p@h/db?sslmode=require"
    )
    assert with_provider_sslmode("postgresql://u:p@h/db?connect_timeout=5", provider) == (
        "postgresql://u:p@h/db?connect_timeout=5&sslmode=require"
    )
    assert with_provider_sslmode("host=h dbname=db user=u", provider) == (
        "host=h dbname=db user=u sslmode=require"
    )
    given = "postgresql://u:p@h/db?sslmode=verify-full"
    assert with_provider_sslmode(given, provider) == given


@pytest.mark.parametrize("provider", ["generic", "railway"])
def test_other_providers_keep_libpqs_default(provider: str) -> None:
    assert with_provider_sslmode("postgresql://u:p@h/db", provider) == "postgresql://u:p@h/db"


@pytest.mark.parametrize("mode", ["disable", "allow"])
def test_tls_turned_off_for_a_tls_provider_is_a_warning(mode: str) -> None:
    [pitfall] = url_pitfalls("app", f"{NEON_DIRECT}?sslmode={mode}", "neon")
    assert pitfall.kind == "sslmode"
    assert f"sslmode={mode}" in pitfall.text and "sslmode=require" in pitfall.text
    assert url_pitfalls("app", f"{NEON_DIRECT}?sslmode={mode}", "generic") == []
    assert url_pitfalls("app", f"{NEON_DIRECT}?sslmode=require", "neon") == []


def test_the_loaded_configuration_connects_tls_providers_with_sslmode_require(
    tmp_path: Path,
) -> None:
    settings = parse_settings(
        {
            "storage": {"local": {"path": str(tmp_path)}},
            "databases": [
                {"name": "neon", "url": NEON_DIRECT, "provider": "neon"},
                {"name": "plain", "url": "postgresql://u:p@db.example.com/app"},
                {"name": "off", "url": f"{NEON_DIRECT}?sslmode=disable", "provider": "neon"},
            ],
        },
        {},
    )
    conns = {d.name: ConnInfo.from_url(d.url.get_secret_value()) for d in settings.databases}
    assert conns["neon"].params["sslmode"] == "require"
    assert "sslmode" not in conns["plain"].params
    assert conns["off"].params["sslmode"] == "disable"
    # pg_dump and pg_restore get it too: the URL's parameters become their environment
    with conns["neon"].client_env() as env:
        assert env["PGSSLMODE"] == "require"


def test_a_tls_providers_connection_to_a_real_server_is_encrypted(
    sample_db: dict[str, Any], tmp_path: Path
) -> None:
    settings = parse_settings(
        {
            "storage": {"local": {"path": str(tmp_path)}},
            "databases": [{"name": "app", "url": sample_db["url"], "provider": "render"}],
        },
        {},
    )
    conn = ConnInfo.from_url(settings.databases[0].url.get_secret_value())
    with conn.connect(autocommit=True) as db:
        row = db.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row == (True,)
