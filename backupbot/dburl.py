"""Database URLs checked when the config is loaded, and text scrubbed of their passwords.

A URL whose password holds an unescaped `@`, `:`, `/`, `?`, `#` or a stray `%` does not
parse as its author meant: libpq takes part of the password for the host, the port or
the database, and then prints that part in its error ("could not translate host name
'leakme@db.example.com'"). `check` rejects such a URL with a message that names the
problem and the fix and no part of the URL's secrets. It also remembers the password,
so `scrub` can remove it from any text: the log formatter runs every line through it.
Connection errors are scrubbed where they become messages, of their URL's password and
of each piece of it (`pieces`).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, unquote

HINT = (
    "percent-encode special characters in the user name and password "
    "(@ as %40, : as %3A, / as %2F, ? as %3F, # as %23, % as %25, space as %20)"
)
MASK = "***"
_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://", "postgresql+psycopg2://")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[^\[\]:/?#@,]*)(?::(?P<port>[^,]*))?")
_QUERY_PASSWORD = re.compile(r"(?i)[?&]password=([^&#]*)")
_PIECE = re.compile(r"[A-Za-z0-9]{4,}")  # the runs of a password a partial leak could show


def _parts(url: str) -> tuple[str, str, str, str] | None:
    """(user info, "@" or "", hosts, the rest) of a PostgreSQL URL; None for other URLs."""
    scheme = next((s for s in _SCHEMES if url.lower().startswith(s)), None)
    if scheme is None:
        return None
    rest = url[len(scheme) :]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, hosts = rest[:end].rpartition("@")
    return userinfo, at, hosts, rest[end:]


def problem(url: str) -> str | None:
    """Why `url` (a PostgreSQL URL) would not parse as meant, in words that quote no part
    of it; None when it is unambiguous. URLs of other schemes are not judged here."""
    parts = _parts(url)
    if parts is None:
        return None
    userinfo, at, hosts, tail = parts
    if "@" in tail or "#" in tail:
        return (
            "the text after the host holds an '@' or '#': a '/', '?' or '#' in the password "
            f"ends the host part early; {HINT}"
        )
    if at and "@" in userinfo:
        return f"holds more than one '@' before the host; {HINT}"
    if userinfo.count(":") > 1:
        return f"the user name or password holds a ':'; {HINT}"
    if _BAD_ESCAPE.search(userinfo):
        return f"the user name or password holds a '%' that starts no %XX escape; {HINT}"
    for host in hosts.split(","):
        m = _HOST.fullmatch(host)
        if m is None or (m.group("port") is not None and not m.group("port").isdigit()):
            return f"the host part is not host:port (a port must be a number); {HINT}"
    return None


def check(url: str) -> str:
    """`url` unchanged if it parses as meant (see `problem`), its password remembered for
    `scrub`; else `ValueError` naming the problem and the fix."""
    found = problem(url)
    if found is not None:
        raise ValueError(f"does not parse as a postgresql://user:password@host/db URL: {found}")
    remember(password_of(url))
    return url


def password_of(url: str) -> str | None:
    """The password of a PostgreSQL URL as written in its user info (percent-decoded) or
    a `password=` parameter, read from the text without judging the rest."""
    parts = _parts(url)
    if parts is None:
        return None
    userinfo, _at, _hosts, tail = parts
    if ":" in userinfo:
        return unquote(userinfo.partition(":")[2])
    found = _QUERY_PASSWORD.search(tail)
    return unquote(found.group(1)) if found else None


# -- scrubbing ----------------------------------------------------------------------------

_lock = threading.Lock()
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None
MIN_REMEMBERED = 4  # shorter passwords would mask ordinary words in every log line


def remember(password: str | None) -> None:
    """Make `scrub` remove `password` (as it is, percent-encoded or JSON-escaped) from
    every text from now on."""
    global _pattern
    if not password or len(password) < MIN_REMEMBERED or password in _known:
        return
    with _lock:
        _known.add(password)
        _pattern = _compile(f for p in _known for f in forms(p))


def forms(password: str) -> set[str]:
    """The ways `password` can appear in text: as it is, percent-encoded, JSON-escaped."""
    return {
        password,
        quote(password, safe=""),
        json.dumps(password)[1:-1],
        json.dumps(password, ensure_ascii=False)[1:-1],
    }


def pieces(password: str) -> set[str]:
    """The runs of 4 or more letters and digits in `password`: what a URL that libpq cut
    in the wrong place shows of it."""
    return set(_PIECE.findall(password))


def _compile(texts: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted({t for t in texts if t}, key=len, reverse=True)
    return re.compile("|".join(re.escape(t) for t in ordered)) if ordered else None


def scrub(text: str, passwords: Iterable[str | None] = ()) -> str:
    """`text` with every remembered password replaced by `***`, and every one in
    `passwords` too, with each of its pieces (for text about that password's URL)."""
    given = [p for p in passwords if p]
    pattern = _compile(f for p in given for f in forms(p) | pieces(p)) if given else None
    for current in (pattern, _pattern):
        if current is not None and text:
            text = current.sub(MASK, text)
    return text
