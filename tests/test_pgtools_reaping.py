"""The pg_dump and pg_restore wrappers stop and reap their program on every exit path,
and a lock wait fails them naming the table and the session holding it.

Real pg_dump/pg_restore against the real server; a second session holds a table lock
so the program is reliably still running (waiting) when the block is left.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from backupbot.devkit.sample_data import load_sample_data
from backupbot.errors import CommandFailed
from backupbot.storage.pg_binaries import PgBinaries, find_binaries
from backupbot.storage.pg_dump import PgDump
from backupbot.storage.pg_restore import PgRestore
from backupbot.storage.pgconn import ConnInfo
from tests.conftest import wait_until

TABLE = "Opportunity"
HOLDER_APP = "checkout-service"


def pg_children() -> list[psutil.Process]:
    """pg_dump/pg_restore processes descending from this test process (zombies too)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.name() in ("pg_dump", "pg_restore"):
                found.append(child)
    return found


def server_sessions(url: str, application_name: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        ).fetchall()
    return [int(r[0]) for r in rows]


def waiting_for_lock(url: str, application_name: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock'",
            (application_name,),
        ).fetchone()
    return bool(row and row[0])


@contextlib.contextmanager
def lock_held(url: str, mode: str) -> Iterator[psycopg.Connection[Any]]:
    """Another application's open transaction holding `mode` on the table."""
    with psycopg.connect(url, application_name=HOLDER_APP) as holder:
        holder.execute(f'LOCK TABLE "{TABLE}" IN {mode} MODE')  # type: ignore[arg-type]
        yield holder
        holder.rollback()


@pytest.fixture
def source(pg: Any) -> str:
    url = pg.create_database(f"reap_{secrets.token_hex(4)}")
    load_sample_data(url)
    return str(url)


@pytest.fixture
def binaries(source: str) -> PgBinaries:
    with psycopg.connect(source) as conn:
        major = conn.info.server_version // 10000
    return find_binaries(major)


class Stop(BaseException):
    """Stands in for a shutdown signal arriving in the middle of the work."""


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt, SystemExit])
def test_pg_dump_left_by_an_exception_is_killed_reaped_and_its_session_ended(
    source: str, binaries: PgBinaries, error: type[BaseException]
) -> None:
    conn = ConnInfo.from_url(source)
    with lock_held(source, "ACCESS EXCLUSIVE"):
        with (
            pytest.raises(error),
            PgDump(binaries, conn, lock_wait_seconds=600) as dump,
            conn.client_env() as env,
        ):
            dump.start(env)
            assert wait_until(lambda: waiting_for_lock(source, dump.application_name))
            assert [p.pid for p in pg_children()] == [dump.pid]
            raise error("the reader failed")

        assert pg_children() == [], "pg_dump is neither running nor a zombie"
        assert server_sessions(source, dump.application_name) == []


def test_pg_dump_behind_a_lock_fails_within_the_wait_naming_table_and_holder(
    source: str, binaries: PgBinaries
) -> None:
    conn = ConnInfo.from_url(source)
    with lock_held(source, "ACCESS EXCLUSIVE") as holder:
        holder_pid = holder.info.backend_pid
        with PgDump(binaries, conn, lock_wait_seconds=1) as dump, conn.client_env() as env:
            stdout = dump.start(env)
            stdout.read()
            with pytest.raises(CommandFailed) as failed:
                dump.finish()

    message = str(failed.value)
    assert f'public."{TABLE}"' in message, message
    assert f"session {holder_pid}" in message and HOLDER_APP in message, message
    assert "LOCK TABLE" in message and "backup.lock_wait_seconds" in message, message
    assert pg_children() == []


def _archive(binaries: PgBinaries, url: str, path: Path) -> Path:
    conn = ConnInfo.from_url(url)
    with conn.client_env() as env:
        subprocess.run([binaries.pg_dump, "--format=custom", f"--file={path}"], env=env, check=True)
    return path


def test_pg_restore_blocked_by_an_application_lock_is_stopped_naming_table_and_holder(
    pg: Any, source: str, binaries: PgBinaries, tmp_path: Path
) -> None:
    archive = _archive(binaries, source, tmp_path / "a.dump")
    target_url = pg.create_database(f"reap_target_{secrets.token_hex(4)}")
    load_sample_data(target_url)
    target = ConnInfo.from_url(target_url)
    # An application's open transaction that wrote to the table: --clean cannot drop it.
    with lock_held(target_url, "ROW EXCLUSIVE") as holder:
        holder_pid = holder.info.backend_pid
        restore = PgRestore(binaries, target, archive, clean=True, lock_timeout_seconds=1)
        with pytest.raises(CommandFailed) as failed:
            restore.run()

    message = str(failed.value)
    assert f'public."{TABLE}"' in message, message
    assert f"session {holder_pid}" in message and HOLDER_APP in message, message
    assert "restore.lock_timeout_seconds" in message, message
    assert pg_children() == []
    assert server_sessions(target_url, restore.application_name) == []


def test_pg_restore_past_its_overall_timeout_is_killed_and_reaped(
    pg: Any, source: str, binaries: PgBinaries, tmp_path: Path
) -> None:
    archive = _archive(binaries, source, tmp_path / "a.dump")
    target_url = pg.create_database(f"reap_target_{secrets.token_hex(4)}")
    load_sample_data(target_url)
    target = ConnInfo.from_url(target_url)
    with lock_held(target_url, "ROW EXCLUSIVE"):
        restore = PgRestore(
            binaries, target, archive, clean=True, lock_timeout_seconds=None, timeout_seconds=1
        )
        with pytest.raises(CommandFailed) as failed:
            restore.run()
        assert "restore.timeout_minutes" in str(failed.value)
        assert pg_children() == []
        # its server session, waiting for the lock, was ended too
        assert server_sessions(target_url, restore.application_name) == []


def test_pg_restore_interrupted_by_a_signal_is_killed_reaped_and_its_session_ended(
    pg: Any, source: str, binaries: PgBinaries, tmp_path: Path
) -> None:
    archive = _archive(binaries, source, tmp_path / "a.dump")
    target_url = pg.create_database(f"reap_target_{secrets.token_hex(4)}")
    load_sample_data(target_url)
    target = ConnInfo.from_url(target_url)
    restore = PgRestore(binaries, target, archive, clean=True, lock_timeout_seconds=None)

    def stop(_signum: int, _frame: object) -> None:
        raise Stop

    def signal_once_waiting() -> None:
        if wait_until(lambda: waiting_for_lock(target_url, restore.application_name)):
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    assert threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGUSR1, stop)
    try:
        with lock_held(target_url, "ROW EXCLUSIVE"):
            sender = threading.Thread(target=signal_once_waiting, daemon=True)
            sender.start()
            with pytest.raises(Stop):
                restore.run()
            sender.join()
            assert pg_children() == []
            assert server_sessions(target_url, restore.application_name) == []
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_pg_restore_statement_over_its_timeout_is_cancelled_and_named(
    pg: Any, binaries: PgBinaries, tmp_path: Path
) -> None:
    # An index whose build is slow only when pg_restore builds it.
    slow_url = pg.create_database(f"reap_slow_{secrets.token_hex(4)}")
    with psycopg.connect(slow_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION public.slow(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$"
            " BEGIN IF current_setting('application_name') LIKE '%pg_restore%' THEN"
            " PERFORM pg_sleep(600); END IF; RETURN x; END $$"
        )
        conn.execute("CREATE TABLE public.t (x int)")
        conn.execute("INSERT INTO public.t VALUES (1)")
        conn.execute("CREATE INDEX t_slow ON public.t (public.slow(x))")
    archive = _archive(binaries, slow_url, tmp_path / "slow.dump")
    target_url = pg.create_database(f"reap_target_{secrets.token_hex(4)}")
    restore = PgRestore(
        binaries, ConnInfo.from_url(target_url), archive, statement_timeout_seconds=1
    )
    with pytest.raises(CommandFailed) as failed:
        restore.run()

    message = str(failed.value)
    assert "restore.statement_timeout_seconds" in message and "t_slow" in message, message
    assert pg_children() == []
    assert server_sessions(target_url, restore.application_name) == []
