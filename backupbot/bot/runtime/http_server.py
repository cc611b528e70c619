"""The HTTP front door's server: waitress, run on a thread that can be stopped.

`serve` runs it for Slack's requests and `/healthz` (or only `/healthz` in Socket Mode),
the devkit runs it in-process. Its loop thread closes the sockets itself when asked to
stop, so stopping never pulls a file descriptor from under a running `select`. Request
bodies over `inbound.MAX_BODY` are refused by waitress itself with 413 as soon as the
Content-Length says so (or, chunked, as soon as that much has arrived).
"""

from __future__ import annotations

import threading
from typing import Any

from waitress.server import create_server

from backupbot.bot.slack.app import WsgiApp
from backupbot.bot.slack.inbound import MAX_BODY


class HttpServer:
    def __init__(self, app: WsgiApp, host: str, port: int, threads: int = 8) -> None:
        self._server: Any = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            max_request_body_size=MAX_BODY + 1,  # waitress refuses a body of this size
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="http")

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def _loop(self) -> None:
        s = self._server
        while not self._stop.is_set():
            s.asyncore.loop(timeout=0.05, map=s._map, use_poll=s.adj.asyncore_use_poll, count=1)
        s.close()

    def close(self) -> None:
        """Stop accepting and close the listening socket; returns once it is closed."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
