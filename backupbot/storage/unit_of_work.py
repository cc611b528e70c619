"""One transaction shared by every repository call made inside it.

`atomic(engine)` opens a transaction and makes it the current one for this thread (a
context variable). Repository methods reach the database through `transaction`,
`orm_session` and `read_session`, which join the current transaction when there is one
and open their own otherwise. So a state change and its incident record commit together
or not at all:

    with atomic(engine):
        catalog.fail(backup_id, now, reason)
        incidents.record(action="backup.failed", ...)

On SQLite every write transaction starts with `BEGIN IMMEDIATE`: it takes the database's
write lock up front (waiting on the busy timeout), so a read-then-write transaction can
never fail half-way because another writer got in between.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from backupbot.errors import StateUnavailable

_CURRENT: ContextVar[tuple[Engine, Connection] | None] = ContextVar("uow", default=None)
IMMEDIATE = "backupbot_immediate"  # execution option read by the SQLite "begin" hook


def current(engine: Engine) -> Connection | None:
    """The transaction this thread has open on `engine`, if any."""
    cur = _CURRENT.get()
    return cur[1] if cur is not None and cur[0] is engine else None


@contextlib.contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction: the current one, or a new one committed on exit."""
    joined = current(engine)
    if joined is not None:
        yield joined
        return
    try:
        with engine.connect() as conn:
            conn.execution_options(**{IMMEDIATE: True})
            with conn.begin():
                token = _CURRENT.set((engine, conn))
                try:
                    yield conn
                finally:
                    _CURRENT.reset(token)
    except IntegrityError:
        raise  # a guarded insert lost a race: the caller's business
    except SQLAlchemyError as exc:
        raise _unavailable(exc, "write") from exc


atomic = transaction
"""Start a unit of work: everything the repositories do inside commits once, together."""


@contextlib.contextmanager
def orm_session(engine: Engine) -> Iterator[Session]:
    """An ORM session inside `transaction(engine)`; flushed on exit, committed with the
    transaction. Objects stay readable after it closes."""
    with transaction(engine) as conn, Session(bind=conn, expire_on_commit=False) as session:
        yield session
        session.flush()


@contextlib.contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reads: inside the current transaction (so it sees that
    transaction's own writes), or on a connection of its own."""
    joined = current(engine)
    if joined is not None:
        with Session(bind=joined, expire_on_commit=False) as session:
            yield session
        return
    try:
        with Session(engine) as session:
            yield session
    except OperationalError as exc:
        raise _unavailable(exc, "read") from exc


def _unavailable(exc: SQLAlchemyError, what: str) -> StateUnavailable:
    """The database's own first line (never a URL or password), in plain words."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
    return StateUnavailable(
        f"The bot's state database could not {what} ({reason}); nothing was changed. "
        "Try again once it is back."
    )
