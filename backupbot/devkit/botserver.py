"""Run the bot's HTTP front door in-process on a free local port (demo, tests)."""

from __future__ import annotations

import socket
import threading
from typing import Any

import waitress

from backupbot.bot.composition import Services
from backupbot.bot.slack_app import build_app, wsgi_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_http_bot(services: Services, threads: int = 4) -> tuple[str, Any]:
    """Serve `services` over HTTP on 127.0.0.1 in a daemon thread.

    Returns the base URL and the server; call `server.close()` to stop it.
    """
    port = free_port()
    server = waitress.create_server(
        wsgi_app(build_app(services)), host="127.0.0.1", port=port, threads=threads
    )
    threading.Thread(target=server.run, daemon=True, name="bot-http").start()
    return f"http://127.0.0.1:{port}", server
