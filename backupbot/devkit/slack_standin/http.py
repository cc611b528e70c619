"""The stand-in's HTTP server: Web API calls under `/api/<method>` and posts to the
response_urls it hands out, answered by its `WebApi`."""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from backupbot.devkit.slack_standin.web_api import WebApi

log = logging.getLogger(__name__)

_JSON_TYPE = "application/json; charset=utf-8"
_TEXT_TYPE = "text/plain; charset=utf-8"


class StandinHttpServer(ThreadingHTTPServer):
    """Serves `standin`'s Web API and response_urls, a daemon thread per request."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], standin: WebApi) -> None:
        self.standin = standin
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: StandinHttpServer
    server_version = "SlackStandin/1.0"

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        content_type = self.headers.get("Content-Type", "")
        standin = self.server.standin
        if url.path.startswith("/api/"):
            status, headers, payload = standin._handle_api(
                method=url.path.removeprefix("/api/"),
                query=url.query,
                body=body,
                content_type=content_type,
                authorization=self.headers.get("Authorization", ""),
            )
            self._send(status, json.dumps(payload).encode("utf-8"), _JSON_TYPE, headers)
        elif url.path.startswith("/upload/") and self.command == "POST":
            status, text = standin._handle_upload(url.path.removeprefix("/upload/"), body)
            self._send(status, text.encode("utf-8"), _TEXT_TYPE, {})
        elif url.path.startswith("/response/") and self.command == "POST":
            rid = url.path.removeprefix("/response/")
            status, text = standin._handle_response_post(rid, body)
            self._send(status, text.encode("utf-8"), _TEXT_TYPE, {})
        else:
            self._send(404, b"not_found", _TEXT_TYPE, {})

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("slack standin: " + format, *args)
