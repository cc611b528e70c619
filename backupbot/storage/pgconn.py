"""Connection details for a team's database: parsing, redaction, and safe hand-off to libpq.

A database URL carries a password. It is parsed once here; the password then travels only
inside psycopg's connect call or a private passfile for pg_dump/pg_restore, never argv,
never logs. `redact()` is what any human-facing text shows, and connection errors are
scrubbed of the password (`backupbot.dburl.scrub`) before they become messages.

pg_dump, pg_restore and psql get an explicit environment (`child_env`): `PATH`, `HOME`,
`LANG`, `LC_*` and `TZ` from the bot's own, the libpq variables the URL sets (`PGSSL*`
among them) and `PGPASSFILE`, nothing else: not the variable holding the URL, not AWS or
Slack credentials. Passfiles live in a 0700 directory of this user's
(`$TMPDIR/backupbot-<uid>`), each named after the process that wrote it; one a killed
process left is removed by the next process that prepares the directory
(`remove_leftover_passfiles`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from backupbot import dburl
from backupbot.errors import BackupbotError, DatabaseUnreachable
from backupbot.storage.liveness import owner_is_dead, process_identity

log = logging.getLogger(__name__)

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


_REFUSED_OPTIONS = "unsupported startup parameter: options"


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
            why = dburl.problem(url) or dburl.scrub(str(exc), [dburl.password_of(url)])
            raise DatabaseUnreachable(
                f"The database URL {redact(url)} could not be parsed ({why}). "
                "Use postgresql://user:password@host:port/dbname."
            ) from None
        password = params.pop("password", None)
        dburl.remember(password)
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
        """Open a psycopg connection; failures become a `DatabaseUnreachable` in plain words.

        No server-side prepared statements (`prepare_threshold=None`): through a
        transaction pooler the next transaction may run on a backend that never saw them.
        A pooler that refuses the `options` startup parameter (PgBouncer's default) is
        connected to again without it: the `-c` settings the bot adds there are limits
        its session watch also enforces (`pg_session_watch.py`), and a session-level SET
        instead would stay on a pooled backend that the application then uses."""
        kwargs.setdefault("prepare_threshold", None)
        try:
            return psycopg.connect(**self.params, password=self.password, **kwargs)  # type: ignore[arg-type]
        except psycopg.OperationalError as exc:
            if "options" in self.params and _REFUSED_OPTIONS in str(exc):
                log.info("%s refuses the options startup parameter; connecting without", self.where)
                params = {k: v for k, v in self.params.items() if k != "options"}
                return ConnInfo(params=params, password=self.password).connect(**kwargs)
            raise explain_connection_error(str(exc), self) from None

    @contextlib.contextmanager
    def client_env(self) -> Iterator[dict[str, str]]:
        """The whole environment for pg_dump/pg_restore (`child_env`), with the libpq
        variables of this URL and a private passfile (removed on exit)."""
        env = child_env()
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
        fd, path = tempfile.mkstemp(prefix=_own_prefix(), dir=passfile_dir())
        try:
            escaped = self.password.replace("\\", "\\\\").replace(":", "\\:")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(f"*:*:*:*:{escaped}\n")
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
    err = DatabaseUnreachable(dburl.scrub(msg, [conn.password]))
    err.detail = dburl.scrub(text, [conn.password])  # type: ignore[attr-defined]
    return err


def url_with_dbname(url: str, dbname: str) -> str:
    """`url` pointing at database `dbname` on the same server with the same credentials."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(dbname), parts.query, ""))


# -- what child programs get ------------------------------------------------------------------

# Passed on from the bot's environment: where programs are, the user's home (libpq looks
# for ~/.postgresql/root.crt there), language and time zone. Every LC_* variable too.
PASSED_ON = ("PATH", "HOME", "LANG", "TZ")


def child_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a pg_dump, pg_restore or psql starts from: `PASSED_ON` and `LC_*`
    from `environ` (default: the bot's), nothing else."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k in PASSED_ON or k.startswith("LC_")}


# -- passfiles ------------------------------------------------------------------------------

PASSFILE_PREFIX = "backupbot-pgpass-"
_PROCESS_STARTED = time.time()  # this module loads as the process starts


def _own_prefix() -> str:
    """`backupbot-pgpass-<host>_<pid>_<token>_`: which process wrote the file, so a later
    process can tell whether its writer is gone."""
    host, pid, token = process_identity().rsplit(":", 2)
    return f"{PASSFILE_PREFIX}{host}_{pid}_{token}_"


def private_dir(base: Path | None = None) -> Path:
    """`backupbot-<uid>` under `base` (default TMPDIR): created 0700, or checked to be a
    real directory this user owns that nobody else may enter (made so if it is ours)."""
    path = Path(tempfile.gettempdir() if base is None else base) / f"backupbot-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise BackupbotError(
            f"{path} is not a directory of this user ({os.getuid()}): backupbot keeps its "
            "passfiles there. Remove it, or set TMPDIR to a directory only this user can write."
        )
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


_swept: set[Path] = set()
_sweep_lock = threading.Lock()


def passfile_dir() -> Path:
    """The passfile directory (`private_dir`, made again if a TMPDIR cleaner removed it);
    the first time this process uses it, leftovers of killed processes are removed."""
    path = private_dir()
    with _sweep_lock:
        if path not in _swept:
            remove_leftover_passfiles(path)
            _swept.add(path)
    return path


def _writer_gone(name: str) -> bool:
    """Whether passfile `name` was written on this host by a process that certainly
    stopped (`liveness.owner_is_dead`)."""
    host = socket.gethostname()
    ours = f"{PASSFILE_PREFIX}{host}_"
    if not name.startswith(ours):
        return False
    pid, _, rest = name[len(ours) :].partition("_")
    token = rest.partition("_")[0]
    return pid.isdigit() and bool(token) and owner_is_dead(f"{host}:{pid}:{token}")


def remove_leftover_passfiles(directory: Path | None = None) -> list[Path]:
    """Remove the passfiles killed processes left in `directory` (default: the private
    one): only `backupbot-pgpass-*` regular files this user owns, written before this
    process started, by a process of this host that is gone. Returns what it removed."""
    directory = private_dir() if directory is None else directory
    removed = []
    for path in directory.glob(PASSFILE_PREFIX + "*"):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if (
            stat.S_ISREG(st.st_mode)
            and st.st_uid == os.getuid()
            and st.st_mtime < _PROCESS_STARTED
            and _writer_gone(path.name)
        ):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    if removed:
        log.info("removed %d passfile(s) left by stopped processes", len(removed))
    return removed
