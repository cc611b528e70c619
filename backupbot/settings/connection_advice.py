"""Connection pitfalls of managed PostgreSQL, from a database's URL and `provider:` alone.

- A transaction pooler in front of the database: Neon's `-pooler` hosts, Supabase's
  pooler (`*.pooler.supabase.com`, or port 6543). Through one, every transaction may run
  on another server connection: the bot's snapshot cannot be shared with pg_dump, so a
  backup dumps without it and counts rows separately. The advice names the direct host.
  (`storage/pg_pooling.py` finds any other transaction pooler by asking the server.)
- TLS: Neon, Supabase and Render accept only encrypted connections. A URL of theirs
  without `sslmode` is connected with `sslmode=require` (`with_provider_sslmode`, applied
  when the configuration is loaded, so psycopg and pg_dump/pg_restore both get it);
  `generic` and `railway` keep libpq's default (`prefer`). `sslmode=disable` (or
  `allow`, which tries without TLS first) for such a provider is a warning.

Everything here is pure: no connection is made.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg.conninfo import conninfo_to_dict

TLS_PROVIDERS = frozenset({"neon", "supabase", "render"})
SUPABASE_POOLER_SUFFIX = ".pooler.supabase.com"
SUPABASE_TRANSACTION_PORT = "6543"
_PLAINTEXT_MODES = frozenset({"disable", "allow"})


@dataclass(frozen=True)
class Pitfall:
    """One problem with how the bot connects: `kind` ("pooler", "sslmode") and a
    sentence that names the fix."""

    kind: str
    text: str


def _params(url: str) -> dict[str, str]:
    try:
        return {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    except Exception:  # an unparsable URL is reported where it is connected
        return {}


def with_provider_sslmode(url: str, provider: str) -> str:
    """`url` with `sslmode=require` added when `provider` requires TLS and the URL does
    not say; otherwise `url` unchanged."""
    params = _params(url)
    if provider not in TLS_PROVIDERS or not params or "sslmode" in params:
        return url
    if "://" not in url:  # key=value form
        return f"{url} sslmode=require"
    base, hash_, fragment = url.partition("#")
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}sslmode=require{hash_}{fragment}"


def direct_host(url: str, provider: str) -> str | None:
    """Where to connect instead of the pooler in `url` (`host:port`), if the URL shows a
    known provider's transaction pooler; None otherwise. (Also None for Supabase's session
    pooler on port 5432, which pg_dump can use.)"""
    params = _params(url)
    host = params.get("host", "")
    port = params.get("port", "5432")
    low = host.lower()
    if "-pooler" in low and (provider == "neon" or low.endswith(".neon.tech")):
        return f"{host.replace('-pooler', '', 1)}:{port}"
    supabase = low.endswith(SUPABASE_POOLER_SUFFIX) or provider == "supabase"
    if supabase and port == SUPABASE_TRANSACTION_PORT:
        user = params.get("user", "")
        ref = user.partition(".")[2] if user.startswith("postgres.") else ""
        direct = f"db.{ref}.supabase.co:5432" if ref else "db.<project-ref>.supabase.co:5432"
        if low.endswith(SUPABASE_POOLER_SUFFIX):
            return f"{direct} (or the session pooler, {host}:5432)"
        return direct
    return None


def pooler_advice(database: str, url: str, provider: str) -> str:
    """The warning for a database reached through a transaction pooler, naming the
    direct host where the URL shows it."""
    direct = direct_host(url, provider)
    instead = (
        f"connect to the direct host {direct} instead"
        if direct
        else "connect to the database's direct host and port instead (not the pooler's)"
    )
    return (
        f"{database} is reached through a transaction pooler (PgBouncer in transaction "
        "mode): pg_dump cannot share the bot's snapshot there, so backups dump without it "
        f"and count rows separately; {instead} in {database}'s URL."
    )


def url_pitfalls(database: str, url: str, provider: str) -> list[Pitfall]:
    """The pitfalls `url` shows by itself: a known transaction pooler, TLS turned off
    for a provider that requires it."""
    found: list[Pitfall] = []
    if direct_host(url, provider) is not None:
        found.append(Pitfall("pooler", pooler_advice(database, url, provider)))
    mode = _params(url).get("sslmode", "")
    if provider in TLS_PROVIDERS and mode in _PLAINTEXT_MODES:
        found.append(
            Pitfall(
                "sslmode",
                f"{database}'s URL has sslmode={mode}, but {provider} accepts only TLS "
                "connections: use sslmode=require (or verify-full with the provider's CA), "
                "or leave sslmode out and the bot uses require.",
            )
        )
    return found


def pitfalls(
    database: str,
    url: str,
    provider: str,
    *,
    pooled: bool = False,
    export_error: str | None = None,
) -> list[Pitfall]:
    """Every pitfall of `database`: the URL's own (`url_pitfalls`), a transaction pooler
    the server showed (`pooled`, see `storage/pg_pooling.py`) that the URL did not name,
    and a snapshot the server refused to export (`export_error`)."""
    found = url_pitfalls(database, url, provider)
    if pooled and not any(p.kind == "pooler" for p in found):
        found.insert(0, Pitfall("pooler", pooler_advice(database, url, provider)))
    if export_error is not None:
        direct = direct_host(url, provider)
        fix = f" If this is a pooler, connect to the direct host {direct}." if direct else ""
        found.append(
            Pitfall(
                "snapshot",
                f"{database}'s server did not export a snapshot ({export_error}): pg_dump "
                f"runs without one and row counts are taken separately.{fix}",
            )
        )
    return found


def shares_snapshot(url: str, provider: str, *, pooled: bool) -> bool:
    """Whether a backup hands the bot's snapshot to pg_dump: not through a transaction
    pooler (the server showed one, or the URL names a provider's)."""
    return not pooled and direct_host(url, provider) is None
