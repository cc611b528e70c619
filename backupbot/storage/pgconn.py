"""Connection details for a team's database: parsing, redaction, and safe hand-off to libpq.

A database URL carries a password. It is parsed once here; the password then travels only
inside psycopg's connect call or a private passfile for pg_dump/pg_restore, never argv,
never logs. `redact()` is what any human-facing text shows.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
from psycopg.conninfo import conninfo_to_dict

from backupbot.errors import DatabaseUnreachable

# libpq connection keywords and the environment variables that carry them to child programs.
_ENV_FOR_KEYWORD = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "user": "PGUSER",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "channel_binding": "PGCHANNELBINDING",
    "gssencmode": "PGGSSENCMODE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "sslnegotiation": "PGSSLNEGOTIATION",
}


@dataclass(frozen=True)
class ConnInfo:
    """A parsed database URL. `repr` never shows the password."""

    params: dict[str, str]
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> ConnInfo:
        try:
            params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
        except psycopg.ProgrammingError as exc:
            raise DatabaseUnreachable(
                f"The database URL {redact(url)} could not be parsed ({exc}). "
                "Use postgresql://user:password@host:port/dbname."
            ) from None
        password = params.pop("password", None)
        params.setdefault("connect_timeout", "10")
        params.setdefault("application_name", "backupbot")
        return cls(params=params, password=password)

    @property
    def dbname(self) -> str:
        return self.params.get("dbname", "")

    @property
    def host(self) -> str:
        return self.params.get("host", "localhost")

    @property
    def port(self) -> str:
        return self.params.get("port", "5432")

    @property
    def user(self) -> str:
        return self.params.get("user", "")

    @property
    def where(self) -> str:
        """Host, port and database, for messages: `db.example.com:5432/app`."""
        return f"{self.host}:{self.port}/{self.dbname}"

    def with_dbname(self, dbname: str) -> ConnInfo:
        return ConnInfo(params={**self.params, "dbname": dbname}, password=self.password)

    def connect(self, **kwargs: object) -> psycopg.Connection:
        """Open a psycopg connection; failures become a `DatabaseUnreachable` in plain words."""
        try:
            return psycopg.connect(**self.params, password=self.password, **kwargs)  # type: ignore[arg-type]
        except psycopg.OperationalError as exc:
            raise explain_connection_error(str(exc), self) from None

    @contextlib.contextmanager
    def client_env(self) -> Iterator[dict[str, str]]:
        """Environment for pg_dump/pg_restore: libpq variables plus a private passfile."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        for key, value in self.params.items():
            var = _ENV_FOR_KEYWORD.get(key)
            if var is None:
                raise DatabaseUnreachable(
                    f"The connection parameter {key!r} in the URL for {self.where} is not "
                    "supported by backupbot's pg_dump hand-off; remove it from the URL."
                )
            env[var] = value
        if self.password is None:
            yield env
            return
        fd, path = tempfile.mkstemp(prefix="backupbot-pgpass-")
        try:
            escaped = self.password.replace("\\", "\\\\").replace(":", "\\:")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(f"*:*:*:*:{escaped}\n")
            os.chmod(path, 0o600)
            env["PGPASSFILE"] = path
            yield env
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


# The password runs to the last "@" that is followed by a host (no "@", "/", "?" or "#").
_USERINFO_PASSWORD = re.compile(r"(://[^:@/]*:)(.*)@(?=[^@/?#]*(?:[/?#]|$))")
_QUERY_PASSWORD = re.compile(r"(?i)(password=)[^&]*")


def redact(url: str) -> str:
    """The URL with its password replaced by `***` (also `password=` query parameters).

    Works on the text rather than a strict URL parse, so passwords holding `#`, `?`, `/`
    or `@` that libpq tolerates unencoded are hidden too.
    """
    return _QUERY_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", url, count=1))


def explain_connection_error(text: str, conn: ConnInfo) -> DatabaseUnreachable:
    """Turn libpq's error text into one helpful sentence naming the server, never the password."""
    low = text.lower()
    target = f"{conn.where} as user {conn.user or '(default)'}"
    if "password authentication failed" in low or "no password supplied" in low:
        msg = (
            f"The server at {conn.where} refused the password for user {conn.user!r}. "
            "Check the password in this database's URL (usually an environment variable)."
        )
    elif re.search(r'role "[^"]*" does not exist', low):
        msg = f"The server at {conn.host}:{conn.port} has no user {conn.user!r}. Check the URL."
    elif re.search(r'database "[^"]*" does not exist', low):
        msg = (
            f"The server at {conn.host}:{conn.port} has no database {conn.dbname!r}. "
            "Check the database name in the URL."
        )
    elif any(s in low for s in ("could not translate host name", "name or service not known")):
        msg = f"The host name {conn.host!r} could not be resolved. Check the host in the URL."
    elif any(s in low for s in ("connection refused", "timeout", "timed out", "no route")):
        msg = (
            f"Could not reach the database server at {conn.host}:{conn.port} (connection "
            "refused or timed out). Check that the server is up and reachable from backupbot."
        )
    elif "ssl" in low:
        msg = f"The SSL connection to {target} failed. Check sslmode and certificates in the URL."
    else:
        msg = f"Could not connect to {target}. Check the URL and that the server is up."
    err = DatabaseUnreachable(msg)
    err.detail = text  # type: ignore[attr-defined]
    return err


def url_with_dbname(url: str, dbname: str) -> str:
    """`url` pointing at database `dbname` on the same server with the same credentials."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(dbname), parts.query, ""))
