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


class _InProcessServer:
    """A waitress server whose loop thread closes the sockets itself when asked to stop,
    so stopping never pulls a file descriptor from under a running `select`."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bot-http")
        self._thread.start()

    def _loop(self) -> None:
        s = self._server
        while not self._stop.is_set():
            s.asyncore.loop(timeout=0.05, map=s._map, use_poll=s.adj.asyncore_use_poll, count=1)
        s.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def start_http_bot(services: Services, threads: int = 4) -> tuple[str, Any]:
    """Serve `services` over HTTP on 127.0.0.1 in a daemon thread.

    Returns the base URL and the server; call `server.close()` to stop it.
    """
    port = free_port()
    server = waitress.create_server(
        wsgi_app(build_app(services)), host="127.0.0.1", port=port, threads=threads
    )
    return f"http://127.0.0.1:{port}", _InProcessServer(server)
