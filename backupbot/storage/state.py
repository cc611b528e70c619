"""The state database: engine construction and automatic Alembic migrations."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from backupbot.errors import ConfigError
from backupbot.storage.unit_of_work import IMMEDIATE

MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x6261636B  # "back": advisory lock id held while migrating on PostgreSQL


def create_state_engine(url: str) -> Engine:
    """An engine for `state_url`; SQLite gets WAL, a busy timeout and foreign keys, and a
    file the bot creates is 0600 (SQLite gives its -wal and -shm files the same mode)."""
    if url.startswith("sqlite"):
        _private_sqlite_file(make_url(url).database)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # Write transactions take the write lock at once (see unit_of_work).
            immediate = conn.get_execution_options().get(IMMEDIATE)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _private_sqlite_file(database: str | None) -> None:
    """Create the SQLite file as an empty 0600 file if it does not exist yet."""
    if not database or database.startswith((":", "file:")):  # in-memory or a URI
        return
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)


HEAD_REVISION = "0014"  # the newest file in migrations/versions; a test keeps them in step


def _current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError):
        return None


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision. Safe to run from several processes.

    A database already at HEAD_REVISION is left alone without loading Alembic, which keeps
    CLI start-up fast.
    """
    if _current_revision(engine) == HEAD_REVISION:
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise ConfigError(
            [f"state_url: cannot open the state database ({exc.orig}); check the URL and access"]
        ) from None
