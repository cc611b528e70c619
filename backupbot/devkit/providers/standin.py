"""The HTTP server every provider stand-in is built on: routes by method and path
pattern, a bearer (or other header) credential check, a log of every request, and
injectable faults (the next N matching requests answer 429, 423, 5xx... with the
headers given) so the bot's retries meet the answers the providers document."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any
    groups: dict[str, str] = field(default_factory=dict)


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    status: int
    times: int = 1
    method: str | None = None
    path_contains: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None

    def matches(self, request: Request) -> bool:
        return (self.method is None or self.method == request.method) and (
            self.path_contains is None or self.path_contains in request.path
        )


Handler = Callable[[Request], Answer]


class ProviderStandIn:
    """A threaded HTTP server on 127.0.0.1. Subclasses register routes in `__init__`
    with `self.route("GET", r"/projects/(?P<project>[^/]+)", handler)`."""

    auth_header = "Authorization"

    def __init__(self, token: str, base_path: str = "") -> None:
        self.token = token
        self.base_path = base_path.rstrip("/")
        self.requests: list[Request] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- set-up ---------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    def inject(self, fault: Fault) -> None:
        """Answer the next `fault.times` matching requests with the fault."""
        with self._lock:
            self._faults.append(fault)

    def start(self) -> ProviderStandIn:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.base_path}"

    def authorized(self, headers: Mapping[str, str]) -> bool:
        return headers.get(self.auth_header.lower()) == f"Bearer {self.token}"

    # -- serving --------------------------------------------------------------------

    def dispatch(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            fault = next((f for f in self._faults if f.matches(request)), None)
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
        if fault is not None:
            return Answer(fault.status, fault.body or {"message": "injected"}, fault.headers)
        if not self.authorized(request.headers):
            return Answer(401, {"message": "Unauthorized"})
        path = request.path.removeprefix(self.base_path)
        allowed = False
        for method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match is None:
                continue
            allowed = True
            if method == request.method:
                request.groups = match.groupdict()
                return handler(request)
        return Answer(405 if allowed else 404, {"message": f"no route {request.method} {path}"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class _Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw.strip() else None
                except ValueError:
                    self._send(Answer(400, {"message": "body is not JSON"}))
                    return
                request = Request(
                    method=self.command,
                    path=split.path,
                    params=dict(parse_qsl(split.query)),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                self._send(standin.dispatch(request))

            def _send(self, answer: Answer) -> None:
                data = b"" if answer.body is None else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return  # the request log is `standin.requests`

        return _Handler
