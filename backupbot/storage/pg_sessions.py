"""Naming and configuring the server sessions of the bot's child programs."""

from __future__ import annotations

import logging
import re
import secrets

import psycopg

from backupbot.errors import BackupbotError
from backupbot.storage.pgconn import ConnInfo

log = logging.getLogger(__name__)


def child_application_name(conn: ConnInfo, program: str, job_id: str | None = None) -> str:
    """A unique `application_name` for the sessions of one run of `program`, so the bot can
    find them on the server (watch their lock waits, end them after a kill). Given the
    job's id, any process can name them later: the one that takes over a dead job's work
    ends what its orphaned program still runs there (`end_sessions`)."""
    base = conn.params.get("application_name", "backupbot")[:24]
    return f"{base} {program} {job_id[:32] if job_id else secrets.token_hex(4)}"


def end_sessions(conn: ConnInfo, application_name: str) -> int:
    """Terminate the server sessions named `application_name` (a program whose process
    stopped may have left a child running: a SIGKILLed bot's pg_restore goes on as an
    orphan; with `--exit-on-error` it exits once its sessions end). The number ended;
    0 when the server cannot be reached (the caller has already recorded the failure)."""
    admin = with_session_settings(
        conn, application_name="backupbot takeover", statement_timeout="5000"
    )
    try:
        with admin.connect(autocommit=True) as db:
            rows = db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (application_name,),
            ).fetchall()
    except (BackupbotError, psycopg.Error) as exc:
        log.warning("could not end the sessions of %s: %s", application_name, type(exc).__name__)
        return 0
    return sum(1 for (ended,) in rows if ended)


def with_session_settings(
    conn: ConnInfo, *, application_name: str | None = None, **settings: str
) -> ConnInfo:
    """`conn` whose sessions start with `application_name` and `-c name=value` settings
    (libpq `options`, appended to any the URL has)."""
    params = dict(conn.params)
    if application_name is not None:
        params["application_name"] = application_name
    if settings:
        extra = " ".join(f"-c {name}={value}" for name, value in settings.items())
        params["options"] = f"{params['options']} {extra}" if params.get("options") else extra
    return ConnInfo(params=params, password=conn.password)


_SECRET_LITERAL = re.compile(r"(?i)(password\s*=?\s*)'(?:[^']|'')*'")


def shown_query(query: str, limit: int = 200) -> str:
    """A session's query for a message: one line, passwords hidden, cut to `limit`."""
    text = " ".join(_SECRET_LITERAL.sub(r"\1'***'", query).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
