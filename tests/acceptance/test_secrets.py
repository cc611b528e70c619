"""Passwords through the real `backupbot config check` and `backupbot serve`: a URL that
would not parse as meant is refused at start with a hint and no part of its password; a
password of every special character, percent-encoded, works against the real PostgreSQL,
and a wrong one fails in plain words; neither password, nor any piece of one, appears in
an answer, the incident log, the log or Slack. pg_dump and pg_restore (recorded by a
wrapper first on the bot's pg_bin_dirs) get only the allowed environment.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from psycopg import sql

from backupbot.devkit.serve_process import backupbot_executable, user_environment, write_config
from backupbot.devkit.slack_standin import SlackStandin
from backupbot.storage.pg_binaries import find_binaries
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REQUESTER, Deployment
from tests.acceptance.test_flows import _text, backup_now

SPECIALS = " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~é"


def _password() -> str:
    return f"P{secrets.token_hex(4)}{SPECIALS}{secrets.token_hex(4)}Q"


def leaked(text: str, password: str) -> list[str]:
    """The password, or any of its runs of 4+ letters and digits, found in `text`."""
    found = [password] if password in text else []
    return found + [p for p in re.findall(r"[A-Za-z0-9]{4,}", password) if p in text]


def _server(pg: Any) -> tuple[str, int]:
    where = urlsplit(pg.url())
    assert where.hostname is not None and where.port is not None
    return where.hostname, where.port


# -- URLs that would not parse as meant -------------------------------------------------------


BAD = {
    "the issue's": "postgresql://u:abc{piece}@leakme@{host}:{port}/app",
    "an @": "postgresql://u:{piece}@{piece2}@{host}:{port}/app",
    "a :": "postgresql://u:{piece}:{piece2}@{host}:{port}/app",
    "a /": "postgresql://u:{piece}/{piece2}@{host}:{port}/app",
    "a #": "postgresql://u:{piece}#{piece2}@{host}:{port}/app",
    "a ?": "postgresql://u:{piece}?{piece2}@{host}:{port}/app",
}


def _bad(template: str, pg: Any) -> tuple[str, str]:
    """The URL and the password its author meant."""
    host, port = _server(pg)
    piece, piece2 = f"Lk{secrets.token_hex(4)}", f"Mn{secrets.token_hex(4)}"
    url = template.format(piece=piece, piece2=piece2, host=host, port=port)
    meant = url.split("://u:", 1)[1].rsplit(f"@{host}", 1)[0]
    return url, meant


@pytest.mark.parametrize("template", BAD.values(), ids=BAD.keys())
def test_config_check_and_serve_refuse_a_url_that_would_not_parse_as_meant(
    template: str, pg: Any, tmp_path: Path
) -> None:
    url, meant = _bad(template, pg)
    config = tmp_path / "backupbot.yml"
    write_config(
        config,
        {
            "storage": {"local": {"path": "./backups"}},
            "slack": {"channel": "C0BACKUPS"},
            "databases": [{"name": "app", "url": "${APP_DATABASE_URL}"}],
        },
    )
    env = user_environment(
        {"APP_DATABASE_URL": url, "SLACK_BOT_TOKEN": "xoxb-t", "SLACK_SIGNING_SECRET": "s"}
    )
    runs = {}
    for command in (["config", "check"], ["config", "check", "--live"], ["serve", "--port", "0"]):
        runs[command[0] + " ".join(command[1:])] = subprocess.run(
            [backupbot_executable(), "--config", str(config), *command],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    for name, run in runs.items():
        said = run.stdout + run.stderr
        assert run.returncode == 2, (name, said)
        assert "databases[0].url: does not parse" in said and "percent-encode" in said, said
        assert leaked(said, meant) == [], (name, said)


# -- a password of every special character, against the real server ---------------------------


@pytest.fixture
def special_role(pg: Any) -> Iterator[tuple[str, str, str]]:
    """A role whose password holds every special character: (role, its password, a
    wrong password of every special character too)."""
    role = f"special_{secrets.token_hex(3)}"
    password = _password()
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    yield role, password, _password()
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _url(pg: Any, role: str, password: str, dbname: str) -> str:
    host, port = _server(pg)
    return f"postgresql://{role}:{quote(password, safe='')}@{host}:{port}/{dbname}"


def _everything_said(dep: Deployment, answers: list[str], extra: str = "") -> str:
    assert dep.serve is not None
    texts = [m.text + json.dumps(m.blocks) for m in dep.standin.messages()]
    texts += [json.dumps(p.body) for p in dep.standin.response_posts()]
    texts += [json.dumps([i.action, i.outcome, i.details]) for i in dep.incidents()]
    return "\n".join([*texts, *answers, dep.serve.log_text(), extra])


@pytest.mark.parametrize("kind", [("http", "sqlite"), ("socket", "postgresql")])
def test_a_password_of_every_special_character_works_and_a_wrong_one_leaks_nowhere(
    kind: tuple[str, str], pg: Any, special_role: tuple[str, str, str], tmp_path: Path
) -> None:
    role, password, wrong = special_role
    source, _counts = source_database(pg)
    dbname = urlsplit(source).path.lstrip("/")
    with SlackStandin() as standin:
        dep = fresh_deployment(
            kind,
            pg,
            standin,
            tmp_path / "deploy",
            databases={
                "app": _url(pg, role, password, dbname),
                "wrong": _url(pg, role, wrong, dbname),
            },
        )
        if dep.state_kind == "postgresql":  # the state database as that role too
            state_db = urlsplit(dep.state_url).path.lstrip("/")
            state_url = _url(pg, role, password, state_db).replace("://", "+psycopg://", 1)
            dep.exported["BACKUPBOT_STATE_URL"] = dep.state_url = state_url
        dep.start()
        try:
            good = backup_now(dep, args="app")
            bad = backup_now(dep, args="wrong")
            answers = [_text(dep.slash(REQUESTER, "status").json())]
            dep.wait_action("backup.failed", "wrong")
            check = dep.cli("config", "check", "--live", check=False)
            said = _everything_said(dep, answers, check.stdout + check.stderr)
        finally:
            dep.close()
            if dep.state_kind == "postgresql":  # its tables belong to the role
                pg.drop_database(urlsplit(dep.state_url).path.lstrip("/"))

    assert good.text.startswith("Backup of app succeeded"), _text(good)
    assert "refused the password" in bad.text, _text(bad)
    assert check.returncode == 1 and "refused the password" in check.stdout + check.stderr
    assert leaked(said, password) == []
    assert leaked(said, wrong) == []


# -- what pg_dump and pg_restore get ----------------------------------------------------------

ALLOWED = {"PATH", "HOME", "LANG", "TZ", "PGPASSFILE"}
LIBPQ = {"PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGAPPNAME", "PGCONNECT_TIMEOUT"}
LIBPQ |= {"PGSSLMODE"}


def _wrappers(directory: Path, records: Path, real: Path) -> Path:
    """`pg_dump` and `pg_restore` that write their environment to `records`, then run
    the real ones in `real`."""
    directory.mkdir()
    records.mkdir()
    for tool in ("pg_dump", "pg_restore"):
        script = directory / tool
        script.write_text(
            "#!/bin/sh\n"
            f'cat /proc/$$/environ > "{records}/{tool}-$$.env"\n'
            f'exec "{real / tool}" "$@"\n',
            encoding="utf-8",
        )
        script.chmod(0o755)
    return directory


def _recorded(records: Path) -> list[tuple[str, dict[str, str]]]:
    found = []
    for path in sorted(records.glob("*.env")):
        pairs = [item.split("=", 1) for item in path.read_bytes().decode().split("\0") if item]
        found.append((path.name.split("-")[0], dict(pairs)))
    return found


def test_pg_dump_and_pg_restore_get_only_the_allowed_environment_and_no_secret(
    pg: Any, tmp_path: Path
) -> None:
    source, _counts = source_database(pg)
    with psycopg.connect(pg.url()) as conn:
        real = find_binaries(conn.info.server_version // 10000).bin_dir
    records = tmp_path / "records"
    wrappers = _wrappers(tmp_path / "bin", records, real)
    with SlackStandin() as standin:
        dep = fresh_deployment(
            ("http", "postgresql"),
            pg,
            standin,
            tmp_path / "deploy",
            databases={"app": source + "?sslmode=prefer"},
            extra={"backup": {"pg_bin_dirs": [str(wrappers)]}},
        )
        dep.exported["AWS_SECRET_ACCESS_KEY"] = "aws-" + secrets.token_hex(12)
        dep.exported["AWS_ACCESS_KEY_ID"] = "AKIA" + secrets.token_hex(8)
        dep.exported["LC_MESSAGES"] = "C"
        dep.start()
        try:
            assert backup_now(dep).text.startswith("Backup of app succeeded")
            assert dep.slash(REQUESTER, "drill app").status == 200
            dep.wait_message(lambda m: m.text.startswith("Restore drill of app passed"))
        finally:
            dep.close()

    runs = _recorded(records)
    with_connection = [(tool, env) for tool, env in runs if "PGDATABASE" in env]
    assert {tool for tool, _env in with_connection} == {"pg_dump", "pg_restore"}  # dump, drill
    secret_values = [v for k, v in dep.exported.items() if re.search("TOKEN|SECRET|_URL|KEY", k)]
    secret_values = [v for v in secret_values if v != dep.exported["SLACK_API_URL"]]
    secret_values.append(urlsplit(source).password or "")
    for tool, env in runs:
        extra = {k for k in env if k not in ALLOWED | LIBPQ and not k.startswith("LC_")}
        assert extra == set(), (tool, extra)
        assert not [s for s in secret_values for v in env.values() if s in v], tool
    for _tool, env in with_connection:
        assert env["PGSSLMODE"] == "prefer" and env["LC_MESSAGES"] == "C"
        passfile = Path(env["PGPASSFILE"])
        assert passfile.parent.name == f"backupbot-{os.getuid()}"
        assert not passfile.exists()  # removed once the program was done
