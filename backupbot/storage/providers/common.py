"""Small helpers the provider adapters share: UTC times in the providers' formats, and
connection URLs for a restored result built from the configured database URL."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from backupbot.errors import ProviderError


def utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is refused (the bot never guesses a zone)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ProviderError("a restore time must carry a timezone (got a naive datetime)")
    return moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, as the providers' APIs take it."""
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    """A provider's timestamp (RFC 3339 text, or Unix seconds) as an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    text = str(value).strip().replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def url_parts(url: str) -> tuple[str, str]:
    """(user, database name) of a PostgreSQL URL."""
    parts = urlsplit(url)
    return unquote(parts.username or ""), unquote(parts.path.lstrip("/"))


def url_with(url: str, *, host: str | None = None, dbname: str | None = None) -> str:
    """`url` with another host and/or database name; user, password, port and query
    are kept (a restored copy has the same roles as its source)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if host is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        port = f":{parts.port}" if parts.port else ""
        netloc = f"{userinfo}@{host}{port}" if userinfo else f"{host}{port}"
        del hostport
    path = f"/{quote(dbname)}" if dbname is not None else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


def host_of(url: str) -> str | None:
    return urlsplit(url).hostname
