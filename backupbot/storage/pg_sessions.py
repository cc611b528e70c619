"""Naming and configuring the server sessions of the bot's child programs."""

from __future__ import annotations

import re
import secrets

from backupbot.storage.pgconn import ConnInfo


def child_application_name(conn: ConnInfo, program: str) -> str:
    """A unique `application_name` for the sessions of one run of `program`, so the bot can
    find them on the server (watch their lock waits, end them after a kill)."""
    base = conn.params.get("application_name", "backupbot")[:24]
    return f"{base} {program} {secrets.token_hex(4)}"


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
