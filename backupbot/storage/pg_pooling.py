"""Whether a database URL leads through a transaction pooler (PgBouncer in transaction
mode, Supavisor, Neon's pooler), asked of the server itself.

A pooler in front of PostgreSQL answers queries like the server, and a client session
cannot run PgBouncer's `SHOW pool_mode` (that needs its admin console). What gives
transaction pooling away is that server connections are shared: two client connections
open at the same time never share a backend on a direct connection (nor in session
pooling, where each client keeps its backend), but through a transaction pooler a
connection whose transaction ended hands its backend back, and the next client gets it
(PgBouncer reuses the most recently freed server connection). So: one connection asks
`pg_backend_pid()`, a second one, still open beside it, asks the same; the same pid means
a pooler. (A pooler that never reuses a backend at once goes unnoticed here; the URL
advice in `settings/connection_advice.py` still names the known providers' poolers.)
"""

from __future__ import annotations

import contextlib
import logging

import psycopg

from backupbot.storage.pg_sessions import with_session_settings
from backupbot.storage.pgconn import ConnInfo

log = logging.getLogger(__name__)

_TRIES = 3


def transaction_pooled(conn: ConnInfo) -> bool:
    """Whether `conn` reaches the server through a transaction pooler (see above).
    Connecting may raise `DatabaseUnreachable`; a failing query answers False."""
    probe = with_session_settings(conn, application_name="backupbot pooler probe")
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(probe.connect(autocommit=True))
        second = stack.enter_context(probe.connect(autocommit=True))
        for _ in range(_TRIES):
            try:
                a = first.execute("SELECT pg_backend_pid()").fetchone()
                b = second.execute("SELECT pg_backend_pid()").fetchone()
            except psycopg.Error:
                log.warning("could not tell whether %s is behind a pooler", conn.where)
                return False
            if a is not None and b is not None and a[0] == b[0]:
                log.info("%s is reached through a transaction pooler", conn.where)
                return True
    return False
