"""Connection details: the password stays out of params, reprs, env values and messages."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from backupbot.errors import DatabaseUnreachable, PgToolMissing
from backupbot.storage.pg_binaries import find_binaries
from backupbot.storage.pg_restore import toc_tables_with_data
from backupbot.storage.pgconn import ConnInfo, explain_connection_error, redact

PASSWORD = "pa55-W0rd-unique"
URL = f"postgresql://alice:{PASSWORD}@db.example.com:6543/app?sslmode=require"


# --- ConnInfo --------------------------------------------------------------------------------


def test_from_url_keeps_password_out_of_params_and_repr() -> None:
    conn = ConnInfo.from_url(URL)

    assert conn.password == PASSWORD
    assert "password" not in conn.params
    assert PASSWORD not in repr(conn)
    assert PASSWORD not in str(conn)
    assert all(PASSWORD not in v for v in conn.params.values())


def test_from_url_exposes_host_port_user_and_database() -> None:
    conn = ConnInfo.from_url(URL)

    assert conn.host == "db.example.com"
    assert conn.port == "6543"
    assert conn.user == "alice"
    assert conn.dbname == "app"
    assert conn.where == "db.example.com:6543/app"
    assert conn.params["sslmode"] == "require"


def test_from_url_sets_timeout_and_application_name_defaults() -> None:
    conn = ConnInfo.from_url("postgresql://alice@db.example.com/app")

    assert conn.password is None
    assert conn.params["connect_timeout"] == "10"
    assert conn.params["application_name"] == "backupbot"
    assert conn.port == "5432"


def test_from_url_decodes_percent_encoded_password() -> None:
    conn = ConnInfo.from_url("postgresql://alice:p%40ss%3Aw%2Fd@db.example.com/app")

    assert conn.password == "p@ss:w/d"
    assert "p@ss" not in repr(conn)


def test_from_url_moves_query_password_out_of_params() -> None:
    conn = ConnInfo.from_url(f"postgresql://db.example.com/app?user=alice&password={PASSWORD}")

    assert conn.password == PASSWORD
    assert "password" not in conn.params
    assert PASSWORD not in repr(conn)


def test_unparseable_url_error_hides_the_password() -> None:
    with pytest.raises(DatabaseUnreachable) as info:
        ConnInfo.from_url(f"postgresql://alice:{PASSWORD}@db.example.com/app?bogus=1")

    assert PASSWORD not in str(info.value)
    assert "alice:***@db.example.com" in str(info.value)


def test_with_dbname_keeps_password_and_other_params() -> None:
    conn = ConnInfo.from_url(URL).with_dbname("postgres")

    assert conn.dbname == "postgres"
    assert conn.password == PASSWORD
    assert conn.host == "db.example.com"


# --- client_env ------------------------------------------------------------------------------


def test_client_env_writes_private_passfile_with_escaped_password() -> None:
    # The URL carries the password a:b\c:<PASSWORD>, percent-encoded.
    conn = ConnInfo.from_url(f"postgresql://alice:a%3Ab%5Cc%3A{PASSWORD}@db.example.com/app")
    assert conn.password == "a:b\\c:" + PASSWORD

    with conn.client_env() as env:
        passfile = Path(env["PGPASSFILE"])
        mode = stat.S_IMODE(passfile.stat().st_mode)
        content = passfile.read_text(encoding="utf-8")

    assert mode == 0o600
    assert content == "*:*:*:*:" + r"a\:b\\c\:" + PASSWORD + "\n"


def test_client_env_sets_libpq_variables_without_password_in_any_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PGPASSWORD", "inherited-" + PASSWORD)
    monkeypatch.setenv("PGSERVICE", "someservice")
    conn = ConnInfo.from_url(URL)

    with conn.client_env() as env:
        assert env["PGHOST"] == "db.example.com"
        assert env["PGPORT"] == "6543"
        assert env["PGUSER"] == "alice"
        assert env["PGDATABASE"] == "app"
        assert env["PGSSLMODE"] == "require"
        assert env["PGAPPNAME"] == "backupbot"
        assert env["PGCONNECT_TIMEOUT"] == "10"
        assert "PGPASSWORD" not in env
        assert "PGSERVICE" not in env
        assert all(PASSWORD not in value for value in env.values())
        assert env["PATH"] == os.environ["PATH"]


def test_client_env_removes_passfile_after_the_context() -> None:
    with ConnInfo.from_url(URL).client_env() as env:
        passfile = Path(env["PGPASSFILE"])
        assert passfile.exists()

    assert not passfile.exists()


def test_client_env_removes_passfile_when_the_body_raises() -> None:
    with pytest.raises(RuntimeError), ConnInfo.from_url(URL).client_env() as env:
        passfile = Path(env["PGPASSFILE"])
        raise RuntimeError("pg_dump failed")

    assert not passfile.exists()


def test_client_env_without_password_writes_no_passfile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSFILE", "/home/someone/.pgpass")

    with ConnInfo.from_url("postgresql://alice@db.example.com/app").client_env() as env:
        assert "PGPASSFILE" not in env
        assert env["PGUSER"] == "alice"


def test_client_env_refuses_parameters_it_cannot_hand_to_pg_dump() -> None:
    conn = ConnInfo.from_url("postgresql://alice@db.example.com/app?service=prod")

    with pytest.raises(DatabaseUnreachable) as info, conn.client_env():
        pass

    assert "'service'" in str(info.value)
    assert "db.example.com" in str(info.value)


# --- redact ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"postgresql://alice:{PASSWORD}@db.example.com:5432/app",
            "postgresql://alice:***@db.example.com:5432/app",
        ),
        (
            f"postgresql://alice:{PASSWORD}@db.example.com/app?sslmode=require",
            "postgresql://alice:***@db.example.com/app?sslmode=require",
        ),
        (
            f"postgresql://alice:p@ss{PASSWORD}@db.example.com/app",
            "postgresql://alice:***@db.example.com/app",
        ),
        (
            f"postgresql://db.example.com/app?user=alice&password={PASSWORD}&sslmode=require",
            "postgresql://db.example.com/app?user=alice&password=***&sslmode=require",
        ),
        (
            f"postgresql://db.example.com/app?PASSWORD={PASSWORD}",
            "postgresql://db.example.com/app?PASSWORD=***",
        ),
        (
            "postgresql://alice@db.example.com/app",
            "postgresql://alice@db.example.com/app",
        ),
    ],
)
def test_redact_replaces_passwords_with_stars(url: str, expected: str) -> None:
    assert redact(url) == expected


@pytest.mark.parametrize("char", ["#", "?"])
def test_redact_hides_password_containing_url_delimiters(char: str) -> None:
    # Regression: libpq accepts `postgresql://alice:pa#ss@host/app` (password "pa#ss"),
    # and a redact() built on urlsplit() cut the netloc at "#" or "?" and returned the URL
    # unchanged, password and all.
    password = f"pa{char}{PASSWORD}"
    url = f"postgresql://alice:{password}@db.example.com/app"

    assert PASSWORD not in redact(url)


# --- explain_connection_error -----------------------------------------------------------------

_PREFIX = 'connection to server at "db.example.com" (10.1.2.3), port 6543 failed: '


@pytest.mark.parametrize(
    ("libpq_text", "expected_parts"),
    [
        (
            _PREFIX + 'FATAL:  password authentication failed for user "alice"',
            ["db.example.com:6543/app", "refused the password", "'alice'"],
        ),
        (
            'connection to server at "db.example.com" (10.1.2.3), port 6543 failed: Connection '
            "refused\n\tIs the server running on that host and accepting TCP/IP connections?",
            ["db.example.com:6543", "Could not reach"],
        ),
        (
            'could not translate host name "db.example.com" to address: Name or service not known',
            ["'db.example.com'", "could not be resolved"],
        ),
        (
            _PREFIX + 'FATAL:  database "app" does not exist',
            ["db.example.com:6543", "no database 'app'"],
        ),
        (
            _PREFIX + 'FATAL:  role "alice" does not exist',
            ["db.example.com:6543", "no user 'alice'"],
        ),
        (_PREFIX + "timeout expired", ["db.example.com:6543", "timed out"]),
        (
            _PREFIX + "SSL error: certificate verify failed",
            ["db.example.com:6543/app", "SSL", "alice"],
        ),
        ("something nobody expected", ["db.example.com:6543/app", "Could not connect"]),
    ],
)
def test_connection_error_names_server_in_plain_words(
    libpq_text: str, expected_parts: list[str]
) -> None:
    conn = ConnInfo.from_url(URL)

    err = explain_connection_error(libpq_text, conn)

    assert isinstance(err, DatabaseUnreachable)
    for part in expected_parts:
        assert part in str(err)
    assert PASSWORD not in str(err)
    assert err.detail == libpq_text  # type: ignore[attr-defined]


def test_missing_role_on_host_named_database_is_not_reported_as_missing_database() -> None:
    # Regression: the "database does not exist" branch once checked that "database" occurs anywhere
    # in libpq's text, so a missing role on a host whose name contains "database" (the AWS
    # RDS console's default instance name is "database-1") is explained as a missing
    # database: "...has no database 'app'" instead of "...has no user 'bob'".
    host = "database-1.abc123.us-east-1.rds.amazonaws.com"
    conn = ConnInfo.from_url(f"postgresql://bob:{PASSWORD}@{host}/app")
    text = (
        f'connection to server at "{host}" (10.0.0.5), port 5432 failed: '
        'FATAL:  role "bob" does not exist'
    )

    err = explain_connection_error(text, conn)

    assert "no user 'bob'" in str(err)
    assert "no database" not in str(err)


# --- pg_restore --list parsing -------------------------------------------------------------

TOC = """\
;
; Archive created at 2024-05-01 12:00:00 UTC
;     dbname: app
;     TOC Entries: 12
;
; Selected TOC Entries:
;
215; 1259 16390 TABLE public User postgres
216; 1259 16400 TABLE public Walk In owner
3345; 0 16390 TABLE DATA public User postgres
3346; 0 16400 TABLE DATA public Walk In owner
3347; 0 16410 TABLE DATA public WalkInDetails postgres
3348; 0 16420 TABLE DATA billing invoices app_owner
3349; 0 0 SEQUENCE SET public User_id_seq postgres
3350; 2606 16430 CONSTRAINT public User User_pkey postgres
"""


def test_toc_tables_with_data_finds_only_table_data_entries() -> None:
    assert toc_tables_with_data(TOC) == {
        "public.User",
        "public.Walk In",
        "public.WalkInDetails",
        "billing.invoices",
    }


def test_toc_tables_with_data_tolerates_indentation_and_crlf() -> None:
    toc = "  3345; 0 16390 TABLE DATA public User postgres\r\n"

    assert toc_tables_with_data(toc) == {"public.User"}


def test_toc_tables_with_data_of_schema_only_archive_is_empty() -> None:
    toc = ";\n215; 1259 16390 TABLE public User postgres\n3350; 0 0 ACL - SCHEMA public pg\n"

    assert toc_tables_with_data(toc) == set()


# --- find_binaries ------------------------------------------------------------------------------


def fake_pg_bin(directory: Path, version: str) -> Path:
    directory.mkdir(parents=True)
    for tool in ("pg_dump", "pg_restore"):
        script = directory / tool
        script.write_text(f"#!/bin/sh\necho '{tool} (PostgreSQL) {version}'\n")
        script.chmod(0o755)
    return directory


def test_find_binaries_without_new_enough_pg_dump_names_the_package() -> None:
    with pytest.raises(PgToolMissing) as info:
        find_binaries(99)

    message = str(info.value)
    assert "postgresql-client-99" in message
    assert "PostgreSQL 99" in message
    assert "backup.pg_bin_dirs" in message


def test_find_binaries_picks_smallest_major_at_least_the_servers(tmp_path: Path) -> None:
    newer = fake_pg_bin(tmp_path / "v98", "98.1")
    newest = fake_pg_bin(tmp_path / "v99", "99.0")

    found = find_binaries(97, [newest, newer])

    assert found.bin_dir == newer
    assert found.major == 98
    assert found.version == "98.1"


def test_find_binaries_lists_the_versions_it_found_when_none_fit(tmp_path: Path) -> None:
    fake = fake_pg_bin(tmp_path / "v98", "98.1")

    with pytest.raises(PgToolMissing) as info:
        find_binaries(99, [fake])

    assert "98" in str(info.value).split("found: ", 1)[1]
    assert "postgresql-client-99" in str(info.value)
