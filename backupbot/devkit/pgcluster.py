"""A throwaway PostgreSQL cluster built from the installed server binaries.

Used by the test suite, `make demo` and the benchmarks. The cluster listens on 127.0.0.1 on a
free TCP port (password auth, scram-sha-256) and on a private unix socket directory (trust).
Durability is switched off (`--no-sync`, `fsync=off`) because the data is disposable.

When the process runs as root, `initdb` and `pg_ctl` run as the `postgres` OS user, which
PostgreSQL requires.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql as pgsql

from backupbot.devkit.pg_tls import tls_settings

INSTALL_HINT = (
    "install them: apt-get install -y postgresql (Debian/Ubuntu), "
    "dnf install -y postgresql-server (Fedora/RHEL), brew install postgresql (macOS), "
    "or set PG_BIN_DIR to the directory holding initdb and pg_ctl"
)
_SERVER_TOOLS = ("initdb", "pg_ctl")
# sun_path is 108 bytes on Linux; the socket file name is ".s.PGSQL.<port>".
_MAX_SOCKET_DIR_LEN = 107 - len("/.s.PGSQL.65535")
_LOG_TAIL_LINES = 30
_STARTUP_TIMEOUT_S = 60


class PgUnavailable(RuntimeError):
    """PostgreSQL server binaries are missing or a throwaway cluster could not be started."""


def _has_server_tools(directory: Path) -> bool:
    return all((directory / tool).is_file() for tool in _SERVER_TOOLS)


def _version_key(path: str) -> tuple[int, ...]:
    """Sort key for /usr/lib/postgresql/<version>/bin paths (numeric, newest last)."""
    version = Path(path).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def find_pg_bin_dir() -> Path:
    """Locate the directory holding `initdb` and `pg_ctl`.

    Order: $PG_BIN_DIR, `pg_config --bindir`, newest /usr/lib/postgresql/*/bin, `initdb` on
    PATH (symlinks resolved). Raises PgUnavailable with an install hint if none qualifies.
    """
    env_dir = os.environ.get("PG_BIN_DIR")
    if env_dir:
        path = Path(env_dir).expanduser()
        if _has_server_tools(path):
            return path.resolve()
        raise PgUnavailable(
            f"PG_BIN_DIR={env_dir} does not contain PostgreSQL server binaries "
            f"({', '.join(_SERVER_TOOLS)}); point it at the right directory or {INSTALL_HINT}"
        )

    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out and _has_server_tools(Path(out)):
                return Path(out).resolve()

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key)
    for candidate in reversed(candidates):
        if _has_server_tools(Path(candidate)):
            return Path(candidate).resolve()

    initdb = shutil.which("initdb")
    if initdb:
        directory = Path(initdb).resolve().parent
        if _has_server_tools(directory):
            return directory

    raise PgUnavailable(
        f"PostgreSQL server binaries ({', '.join(_SERVER_TOOLS)}) not found; {INSTALL_HINT}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


def _conf_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


class PgCluster:
    """A disposable PostgreSQL cluster living under `base_dir`.

    Layout: `base_dir/data` (PGDATA), `base_dir/sock` (unix socket), `base_dir/postgres.log`.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        base_dir: Path,
        password: str,
        superuser: str = "postgres",
        port: int | None = None,
        bin_dir: Path | None = None,
    ) -> None:
        if not password:
            raise ValueError("a non-empty superuser password is required")
        self.base_dir = Path(base_dir).absolute()
        self.password = password
        self.superuser = superuser
        self._requested_port = port
        self.port: int = port or 0
        self.bin_dir = Path(bin_dir) if bin_dir else None
        self.data_dir = self.base_dir / "data"
        self.log_file = self.base_dir / "postgres.log"
        self.socket_dir = self.base_dir / "sock"
        self._temp_socket_dir: Path | None = None
        self._active_socket_dir = self.socket_dir
        self._running = False
        self._pg_user: pwd.struct_passwd | None = None

    # ----------------------------------------------------------------- process plumbing
    def _tool(self, name: str) -> str:
        assert self.bin_dir is not None
        return str(self.bin_dir / name)

    def _child_env(self) -> dict[str, str]:
        """Environment for server tools: no inherited PG* settings, C messages."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_MESSAGES"] = "C"
        if self._pg_user is not None:
            env.update(HOME=str(self.base_dir), USER=self._pg_user.pw_name)
            env["LOGNAME"] = self._pg_user.pw_name
        return env

    def _run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a server tool, as the `postgres` OS user when we are root."""
        kwargs: dict[str, Any] = {}
        if self._pg_user is not None:
            kwargs = {
                "user": self._pg_user.pw_uid,
                "group": self._pg_user.pw_gid,
                "extra_groups": [],
            }
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.base_dir,
            env=self._child_env(),
            stdin=subprocess.DEVNULL,
            check=False,
            **kwargs,
        )

    def _chown(self, path: Path) -> None:
        if self._pg_user is not None:
            os.chown(path, self._pg_user.pw_uid, self._pg_user.pw_gid)

    def _ensure_traversable(self) -> None:
        """Give the `postgres` user search (x) permission on every ancestor of base_dir.

        Only the traverse bit for "other" is added, and only where it is missing; directory
        listings stay private.
        """
        assert self._pg_user is not None
        groups = {self._pg_user.pw_gid} | set(
            os.getgrouplist(self._pg_user.pw_name, self._pg_user.pw_gid)
        )
        for ancestor in reversed(self.base_dir.parents):
            st = ancestor.stat()
            if st.st_uid == self._pg_user.pw_uid:
                ok = bool(st.st_mode & stat.S_IXUSR)
            elif st.st_gid in groups:
                ok = bool(st.st_mode & stat.S_IXGRP)
            else:
                ok = bool(st.st_mode & stat.S_IXOTH)
            if not ok:
                os.chmod(ancestor, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)

    def _prepare_dirs(self) -> None:
        if os.geteuid() == 0:
            try:
                self._pg_user = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PgUnavailable(
                    "running as root, but there is no `postgres` OS user to run the server as; "
                    "create it (useradd --system postgres) or run as an unprivileged user"
                ) from exc
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._pg_user is not None:
            self._ensure_traversable()
        self._chown(self.base_dir)

        socket_dir = self.socket_dir
        if len(str(socket_dir)) > _MAX_SOCKET_DIR_LEN:
            self._temp_socket_dir = Path(tempfile.mkdtemp(prefix="bbpg-"))
            socket_dir = self._temp_socket_dir
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown(socket_dir)
        self._active_socket_dir = socket_dir

    def _initdb(self) -> None:
        assert self.bin_dir is not None
        fd, pwfile_name = tempfile.mkstemp(prefix=".pwfile-", dir=self.base_dir)
        pwfile = Path(pwfile_name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.password + "\n")
            self._chown(pwfile)
            result = None
            for locale in ("C.UTF-8", "C"):
                args = [
                    self._tool("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.superuser,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    f"--locale={locale}",
                    "--no-sync",
                ]
                result = self._run(args)
                if result.returncode == 0:
                    break
                shutil.rmtree(self.data_dir, ignore_errors=True)
            assert result is not None
            if result.returncode != 0:
                raise PgUnavailable(
                    f"initdb failed (exit {result.returncode}):\n"
                    f"{(result.stderr or result.stdout).strip()[-2000:]}"
                )
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as fh:
            fh.write(
                "\n# backupbot devkit: per-start settings\ninclude_if_exists = 'devkit.conf'\n"
            )

    def _write_runtime_conf(self) -> None:
        settings = {
            "listen_addresses": _conf_quote(self.host),
            "port": str(self.port),
            "unix_socket_directories": _conf_quote(str(self._active_socket_dir)),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "logging_collector": "off",
            **tls_settings(self.data_dir, self._chown),
        }
        conf = self.data_dir / "devkit.conf"
        conf.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()), encoding="utf-8")
        self._chown(conf)

    def _pg_ctl_start(self) -> subprocess.CompletedProcess[str]:
        return self._run(
            [
                self._tool("pg_ctl"),
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(_STARTUP_TIMEOUT_S),
            ],
            timeout=_STARTUP_TIMEOUT_S + 30,
        )

    # ----------------------------------------------------------------- public API
    def start(self) -> PgCluster:
        """Create the cluster if needed and start it; returns self."""
        if self._running:
            return self
        if self.bin_dir is None:
            self.bin_dir = find_pg_bin_dir()
        elif not _has_server_tools(self.bin_dir):
            raise PgUnavailable(
                f"{self.bin_dir} does not contain PostgreSQL server binaries "
                f"({', '.join(_SERVER_TOOLS)}); {INSTALL_HINT}"
            )
        try:
            self._prepare_dirs()
            if not (self.data_dir / "PG_VERSION").is_file():
                self._initdb()
            attempts = 1 if self._requested_port else 3
            for attempt in range(attempts):
                self.port = self._requested_port or _free_port()
                self._write_runtime_conf()
                log_size = self.log_file.stat().st_size if self.log_file.exists() else 0
                result = self._pg_ctl_start()
                if result.returncode == 0:
                    break
                new_log = ""
                with contextlib.suppress(OSError), self.log_file.open("rb") as fh:
                    fh.seek(log_size)
                    new_log = fh.read().decode("utf-8", "replace")
                port_clash = "could not bind" in new_log or "already in use" in new_log
                if not port_clash or attempt == attempts - 1:
                    raise PgUnavailable(
                        f"PostgreSQL failed to start on {self.host}:{self.port} "
                        f"(pg_ctl exit {result.returncode}): "
                        f"{(result.stderr or result.stdout).strip()}\n"
                        f"last lines of {self.log_file}:\n{_tail(self.log_file)}"
                    )
        except BaseException as exc:
            self._abort_start()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise PgUnavailable(
                    f"PostgreSQL did not start in time: {exc}\n"
                    f"last lines of {self.log_file}:\n{_tail(self.log_file)}"
                ) from exc
            if isinstance(exc, OSError):
                raise PgUnavailable(
                    f"could not start PostgreSQL in {self.base_dir}: {exc}"
                ) from exc
            raise
        self._running = True
        atexit.register(self.stop)
        return self

    def _abort_start(self) -> None:
        """Best-effort cleanup after a failed start: no stray server, no temp socket dir."""
        if self.bin_dir is not None and (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self._run(
                    [self._tool("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "immediate"],
                    timeout=30,
                )
        self._remove_temp_socket_dir()

    def _remove_temp_socket_dir(self) -> None:
        if self._temp_socket_dir is not None:
            shutil.rmtree(self._temp_socket_dir, ignore_errors=True)
            self._temp_socket_dir = None

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`mode` fast: backends told to end, then a checkpoint;
        immediate: as a crash, recovered at the next start). Safe to call more than once."""
        if not self._running:
            return
        self._running = False
        atexit.unregister(self.stop)
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run(
                    [self._tool("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", mode, "-w"],
                    timeout=_STARTUP_TIMEOUT_S,
                )
        finally:
            self._remove_temp_socket_dir()

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def url(self, dbname: str = "postgres", *, password: str | None = None) -> str:
        """A TCP connection URL for `dbname` as the superuser (password URL-quoted)."""
        pw = self.password if password is None else password
        return (
            f"postgresql://{quote(self.superuser, safe='')}:{quote(pw, safe='')}"
            f"@{self.host}:{self.port}/{quote(dbname, safe='')}"
        )

    def _connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        if not self._running:
            raise PgUnavailable("the cluster is not running; call start() first")
        return psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=10)

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Run SQL (one or more statements, no parameters) in autocommit mode."""
        with self._connect(dbname) as conn:
            conn.execute(sql)

    def create_database(self, name: str) -> str:
        """(Re)create an empty database and return its URL."""
        with self._connect() as conn:
            ident = pgsql.Identifier(name)
            conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
            conn.execute(pgsql.SQL("CREATE DATABASE {} TEMPLATE template0").format(ident))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists, disconnecting its sessions."""
        with self._connect() as conn:
            conn.execute(
                pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
            )

    @property
    def server_version_num(self) -> int:
        """The server's version as an integer, e.g. 150008."""
        with self._connect() as conn:
            row = conn.execute("SHOW server_version_num").fetchone()
        assert row is not None
        return int(row[0])
