"""Run the bot's HTTP front door in-process on a free local port (tests)."""

from __future__ import annotations

import socket

from backupbot.bot.runtime.http_server import HttpServer
from backupbot.bot.services import Services
from backupbot.bot.slack.app import build_app, wsgi_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_http_bot(services: Services, threads: int = 4) -> tuple[str, HttpServer]:
    """Serve `services` over HTTP on 127.0.0.1 in a daemon thread.

    Returns the base URL and the server; call `server.close()` to stop it.
    """
    app = build_app(services)
    services.start_worker(services.slack_client)  # as serve's in-process worker
    server = HttpServer(wsgi_app(app), "127.0.0.1", 0, threads=threads).start()
    return f"http://127.0.0.1:{server.port}", server
