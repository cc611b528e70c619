"""Database URLs that would not parse as meant are refused at load, naming no part of the
password; text about a URL is scrubbed of its password and the pieces of it."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import pytest

from backupbot import dburl
from backupbot.errors import ConfigError, DatabaseUnreachable
from backupbot.settings import parse_settings
from backupbot.storage.pgconn import ConnInfo, explain_connection_error

SPECIALS = " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~é"
PASSWORD = "Zq7" + SPECIALS + "Xk4vMw9p"  # every special character, then a distinctive run


def leaked(text: str, password: str) -> list[str]:
    """The password, or any of its runs of 4+ letters and digits, found in `text`."""
    found = [password] if password in text else []
    return found + [p for p in re.findall(r"[A-Za-z0-9]{4,}", password) if p in text]


BAD = {
    "the issue's": "postgresql://u:abc{pw}@leakme@127.0.0.1:5432/app",
    "an @": "postgresql://u:Wx8q@Yt7r9Lmn@db.example.com/app",
    "a :": "postgresql://u:Wx8q:Yt7r9Lmn@db.example.com/app",
    "a /": "postgresql://u:Wx8q/Yt7r9Lmn@db.example.com/app",
    "a #": "postgresql://u:Wx8q#Yt7r9Lmn@db.example.com/app",
    "a ?": "postgresql://u:Wx8q?Yt7r9Lmn@db.example.com/app",
    "a stray %": "postgresql://u:Wx8q%zzYt7r9Lmn@db.example.com/app",
    "a port that is text": "postgresql://u@db.example.com:Yt7r9Lmn/app",
}


@pytest.mark.parametrize("url", BAD.values(), ids=BAD.keys())
def test_a_url_that_would_not_parse_as_meant_is_refused_without_any_part_of_it(
    url: str,
) -> None:
    url = url.format(pw="Yt7r9Lmn")

    with pytest.raises(ValueError) as info:
        dburl.check(url)

    message = str(info.value)
    assert "percent-encode" in message
    assert "Yt7r9Lmn" not in message and "leakme" not in message and "Wx8q" not in message


GOOD = [
    f"postgresql://u:{quote(PASSWORD, safe='')}@db.example.com:5432/app?sslmode=require",
    "postgres://u@db.example.com/app",
    "postgresql://u:pw@[::1]:5432/app",
    "postgresql://u:pw@h1:5432,h2:5433/app?target_session_attrs=read-write",
    "postgresql://u:pw@%2Fvar%2Frun%2Fpostgresql/app",
    "postgresql+psycopg://u:pw@localhost/state",
    "sqlite:///backupbot.db",
]


@pytest.mark.parametrize("url", GOOD)
def test_a_well_formed_url_is_accepted_unchanged(url: str) -> None:
    assert dburl.problem(url) is None
    assert dburl.check(url) == url


def test_a_percent_encoded_password_of_every_special_character_is_read_back_exactly() -> None:
    url = f"postgresql://u:{quote(PASSWORD, safe='')}@db.example.com/app"

    assert dburl.password_of(url) == PASSWORD
    assert ConnInfo.from_url(dburl.check(url)).password == PASSWORD


def _config(state_url: str = "sqlite:///s.db") -> dict[str, Any]:
    return {
        "state_url": state_url,
        "storage": {"local": {"path": "/tmp/b"}},
        "databases": [{"name": "app", "url": "${APP_DATABASE_URL}"}],
    }


@pytest.mark.parametrize("url", BAD.values(), ids=BAD.keys())
def test_loading_the_config_names_the_key_and_the_fix_and_no_part_of_the_password(
    url: str,
) -> None:
    url = url.format(pw="Yt7r9Lmn")
    with pytest.raises(ConfigError) as info:
        parse_settings(_config(), {"APP_DATABASE_URL": url})

    [problem] = info.value.problems
    assert problem.startswith("databases[0].url: does not parse")
    assert "percent-encode" in problem
    assert not leaked(str(info.value), "abcYt7r9Lmn@leakme Wx8q")


def test_a_state_url_that_would_not_parse_as_meant_is_refused_too() -> None:
    state = "postgresql+psycopg://bot:abcYt7r9Lmn@leakme@127.0.0.1/state"
    good = f"postgresql://u:{quote(PASSWORD, safe='')}@db.example.com/app"

    with pytest.raises(ConfigError) as info:
        parse_settings(_config(state), {"APP_DATABASE_URL": good})

    assert [p.split(":")[0] for p in info.value.problems] == ["state_url"]
    assert not leaked(str(info.value), "abcYt7r9Lmn@leakme")


def test_scrub_removes_a_given_password_in_every_form_and_each_of_its_pieces() -> None:
    password = "Qm3v&Tn9w@R2x"
    text = " | ".join(
        [
            f"raw {password}",
            f"encoded {quote(password, safe='')}",
            f"json {json.dumps(password)}",
            "piece: could not translate host name 'Tn9w@R2x@db'",
        ]
    )

    scrubbed = dburl.scrub(text, [password])

    assert leaked(scrubbed, password) == []
    assert scrubbed.startswith('raw *** | encoded *** | json "***" | piece: could not')


def test_a_checked_url_s_password_is_scrubbed_from_any_text_afterwards() -> None:
    password = "Lp4" + SPECIALS + "Hq8zVn"
    dburl.check(f"postgresql://u:{quote(password, safe='')}@db.example.com/app")

    text = f"a line with {password} and {json.dumps(password)} in it"

    assert password not in dburl.scrub(text)
    assert json.dumps(password)[1:-1] not in dburl.scrub(text)


def test_an_unparseable_url_s_error_shows_no_part_of_its_password() -> None:
    url = "postgresql://u:abcYt7r9Lmn@leakme@db.example.com/app?sslmode=bogus%zz"

    with pytest.raises(DatabaseUnreachable) as info:
        ConnInfo.from_url(url)

    assert not leaked(str(info.value), "abcYt7r9Lmn@leakme")


def test_a_connection_error_s_text_is_scrubbed_of_its_password_before_it_is_kept() -> None:
    conn = ConnInfo.from_url(f"postgresql://u:{quote(PASSWORD, safe='')}@db.example.com/app")
    libpq = f'could not translate host name "{PASSWORD[-12:]}@db" to address'

    err = explain_connection_error(libpq, conn)

    assert not leaked(str(err), PASSWORD)
    assert not leaked(err.detail, PASSWORD)  # type: ignore[attr-defined]  # set by explain_connection_error
