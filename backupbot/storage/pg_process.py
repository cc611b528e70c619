"""Running one pg program as a child process: its process group, stderr capture, kill
and reaping, and the words for how it exited. Arguments are built up front (never a
shell) and connection details go through the environment (`ConnInfo.client_env`)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from typing import IO, Self

from backupbot.errors import CommandFailed
from backupbot.storage.pg_session_watch import SessionWatch
from backupbot.storage.pgconn import ConnInfo

log = logging.getLogger(__name__)


class StderrCollector(threading.Thread):
    """Drains a child's stderr so it can never block on a full pipe; keeps the tail."""

    def __init__(self, stream: IO[bytes], limit: int = 64 * 1024) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self._limit = limit
        self._buf = bytearray()

    def run(self) -> None:
        for line in iter(self._stream.readline, b""):
            self._buf.extend(line)
            if len(self._buf) > self._limit:
                del self._buf[: len(self._buf) - self._limit]

    @property
    def text(self) -> str:
        self.join(timeout=5)
        return self._buf.decode("utf-8", "replace")


def describe_exit(program: str, returncode: int) -> str:
    """How `program` ended, for a failure message."""
    if returncode < 0:
        return f"{program} was stopped by signal {-returncode} before it finished"
    return f"{program} exited with code {returncode}"


def seconds_text(value: float) -> str:
    """A duration in seconds for a message ("30 s", "0.5 s")."""
    return f"{value:g} s"


def is_connection_failure(stderr: str) -> bool:
    """Whether a pg program's stderr says it could not connect or log in."""
    low = stderr.lower()
    return "connection to server" in low or "password authentication" in low


def first_error_reason(stderr: str) -> str:
    """ ": <text>" of the first error line in a pg program's stderr, or "" if none."""
    first = next((ln for ln in stderr.splitlines() if "error" in ln.lower()), "")
    return f": {first.split('error:', 1)[-1].strip()}" if first else ""


class PgProcess:
    """One run of a pg program in its own process group, stopped and reaped on every exit
    path: use it as a context manager (`with PgDump(...) as dump:`); leaving the block
    kills whatever of the program still runs (the whole group: pg_restore -j forks
    workers), waits for it, and ends its server sessions if it did not finish."""

    program = ""

    def __init__(self, conn: ConnInfo, application_name: str) -> None:
        self.conn = conn
        self.application_name = application_name
        self.args: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: StderrCollector | None = None
        self._killed = False
        self._lock = threading.Lock()
        self._watch: SessionWatch | None = None
        self._own_watch = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _spawn(self, env: dict[str, str], stdout: int) -> subprocess.Popen[bytes]:
        log.info("starting %s", self.program, extra={"argv": self.args, "target": self.conn.where})
        env = {**env, "PGAPPNAME": self.application_name}
        with self._lock:  # a kill() before or during the start still stops it
            if self._killed:
                raise CommandFailed(
                    f"{self.program} was stopped before it started.",
                    program=self.program,
                    returncode=None,
                    stderr="",
                )
            self._proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        assert self._proc.stderr is not None
        self._stderr = StderrCollector(self._proc.stderr)
        self._stderr.start()
        return self._proc

    def kill(self) -> None:
        """Stop the program now (from any thread); `close` still reaps it."""
        with self._lock:
            self._killed = True
            self._signal_group()

    def _signal_group(self) -> None:
        # Only while the leader is not reaped: until then its pid, the group's id, cannot
        # belong to anything else.
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def _reap(self) -> int:
        assert self._proc is not None
        try:
            return self._proc.wait()
        except BaseException:  # interrupted while waiting: stop it, reap it, go on raising
            self.kill()
            self._proc.wait()
            raise

    def close(self) -> None:
        """Kill the program if it still runs, reap it, release its pipes and watch."""
        proc = self._proc
        finished = proc is not None and not self._killed and proc.poll() == 0
        if proc is not None:
            self.kill()
            self._reap()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self._stderr is not None:
            self._stderr.join(timeout=5)
        if self._watch is not None:
            if proc is not None and not finished:
                self._watch.terminate_sessions(self.application_name)
            if self._own_watch:
                self._watch.stop()

    def _stderr_text(self) -> str:
        return self._stderr.text if self._stderr else ""
