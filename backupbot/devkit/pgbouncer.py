"""A real PgBouncer in transaction pooling mode in front of a test cluster: what Neon's
`-pooler` hosts and Supabase's port 6543 are. Every transaction of a client may run on
another server connection, and session state (SET, prepared statements) does not follow
the client; like PgBouncer's default configuration it refuses the `options` startup
parameter ("unsupported startup parameter: options"). Needs the `pgbouncer` program
(Debian: `apt-get install pgbouncer`).

Run as root, it runs as the `postgres` OS user (PgBouncer refuses to run as root)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict


class PgBouncerUnavailable(RuntimeError):
    pass


def pgbouncer_program() -> str | None:
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _let_traverse(directory: Path) -> None:
    """Add the traverse bit for others to each ancestor of `directory` that lacks it
    (pytest's temporary directories are 0700), as PgCluster does; listings stay private."""
    for ancestor in reversed(directory.parents):
        mode = stat.S_IMODE(ancestor.stat().st_mode)
        if not mode & stat.S_IXOTH:
            os.chmod(ancestor, mode | stat.S_IXOTH)


class PgBouncer:
    """PgBouncer on 127.0.0.1 forwarding every database to `server_port`, with
    `pool_mode = transaction` and `pool_size` server connections per database/user."""

    def __init__(
        self,
        base_dir: Path,
        server_port: int,
        user: str,
        password: str,
        pool_size: int = 5,
        query_wait_timeout: int = 120,
    ) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.server_port = server_port
        self.user = user
        self.password = password
        self.pool_size = pool_size
        self.query_wait_timeout = query_wait_timeout  # PgBouncer's default: 120 s
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def in_front_of(cls, server_url: str, base_dir: Path, **kwargs: int) -> PgBouncer:
        """A pooler (not started) for the server of `server_url` (on 127.0.0.1), with
        its user and password."""
        params = conninfo_to_dict(server_url)
        return cls(
            base_dir,
            int(str(params.get("port") or 5432)),
            str(params.get("user") or "postgres"),
            str(params.get("password") or ""),
            **kwargs,
        )

    def url(self, dbname: str, host: str = "127.0.0.1") -> str:
        """A URL through the pooler; a `host` name other than 127.0.0.1 (a provider's
        pooler name, for advice tests) is reached through `hostaddr=127.0.0.1`."""
        via = "" if host == "127.0.0.1" else "&hostaddr=127.0.0.1"
        return (
            f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{host}:{self.port}/{quote(dbname, safe='')}?sslmode=disable{via}"
        )

    def start(self) -> PgBouncer:
        program = pgbouncer_program()
        if program is None:
            raise PgBouncerUnavailable("pgbouncer is not installed (apt-get install pgbouncer)")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        userlist = self.base_dir / "userlist.txt"
        userlist.write_text(f'"{self.user}" "{self.password}"\n', encoding="utf-8")
        ini = self.base_dir / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.server_port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = scram-sha-256\n"
            f"auth_file = {userlist}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\n"
            f"query_wait_timeout = {self.query_wait_timeout}\n"
            "max_client_conn = 100\n"
            f"logfile = {self.base_dir / 'pgbouncer.log'}\n",
            encoding="utf-8",
        )
        kwargs: dict[str, Any] = {}
        if os.geteuid() == 0:
            pg_user = pwd.getpwnam("postgres")
            _let_traverse(self.base_dir)
            for path in (self.base_dir, userlist, ini):
                os.chown(path, pg_user.pw_uid, pg_user.pw_gid)
            os.chmod(userlist, 0o600)
            kwargs = {"user": pg_user.pw_uid, "group": pg_user.pw_gid, "extra_groups": []}
        self._process = subprocess.Popen(
            [program, str(ini)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"},
            **kwargs,
        )
        self._wait_listening()
        return self

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                log = self.base_dir / "pgbouncer.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise PgBouncerUnavailable(f"pgbouncer exited at start:\n{tail}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.05)
        raise PgBouncerUnavailable("pgbouncer did not start listening within 20 s")

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()
