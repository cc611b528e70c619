"""An HTTP proxy in front of an S3 server (moto's, in the tests) that injects faults by rule.

The bot is pointed at the proxy (`storage.s3.endpoint_url`); the proxy forwards every
request to the real server unchanged (headers and body as signed) and, where a rule
matches, answers instead with a fault:

- `error`: a 500 with an S3 XML error body, without forwarding;
- `drop`: reads the request, then closes the connection without answering;
- `forward_then_error`: forwards (the server performs the request), answers 500;
- `truncate`: forwards, then sends the full Content-Length header but only part of the
  body, and closes the connection;
- `delay`: waits before forwarding (to slow uploads or widen race windows);
- `corrupt`: forwards the request with one byte of its body flipped (headers as signed,
  checksums included), and answers what the server answered: damage in flight.

Rules are switched at run time (`inject`, `remove`, `clear`) from the test's thread; the
proxy records every request it saw and what it did (`seen`).

    with S3FaultProxy(moto_url) as proxy:
        proxy.inject(Fault.error("UploadPart", part_number=2))   # every try of part 2
        ...
        proxy.clear()
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape

ACTIONS = ("error", "drop", "forward_then_error", "truncate", "delay", "corrupt")
# Hop-by-hop headers: about this connection, not the request; never forwarded.
_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
}


def s3_error_body(code: str = "InternalError", message: str = "") -> bytes:
    """An S3 error document, as S3 sends with a 4xx/5xx."""
    text = message or "We encountered an internal error. Please try again."
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(text)}</Message>"
        "<RequestId>s3-fault-proxy</RequestId><HostId>s3-fault-proxy</HostId></Error>"
    ).encode()


@dataclass(frozen=True)
class S3Request:
    """One request as the proxy understood it (path-style addressing)."""

    method: str
    operation: str  # e.g. "UploadPart", "CompleteMultipartUpload", "GetObject"
    bucket: str
    key: str
    part_number: int | None
    upload_id: str | None


def classify(method: str, target: str) -> S3Request:
    """Name the S3 operation of `method target` (path-style URLs, as with endpoint_url)."""
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    path = unquote(parts.path).lstrip("/")
    bucket, _, key = path.partition("/")
    upload_id = query.get("uploadId")
    part = query.get("partNumber")
    part_number = int(part) if part and part.isdigit() else None
    if key:
        if upload_id is not None:
            operation = {
                "PUT": "UploadPart",
                "POST": "CompleteMultipartUpload",
                "DELETE": "AbortMultipartUpload",
                "GET": "ListParts",
            }.get(method, method)
        elif "uploads" in query and method == "POST":
            operation = "CreateMultipartUpload"
        else:
            operation = {
                "GET": "GetObject",
                "HEAD": "HeadObject",
                "PUT": "PutObject",
                "DELETE": "DeleteObject",
            }.get(method, method)
    elif "uploads" in query and method == "GET":
        operation = "ListMultipartUploads"
    elif "delete" in query and method == "POST":
        operation = "DeleteObjects"
    else:
        operation = {
            "GET": "ListObjects",
            "HEAD": "HeadBucket",
            "PUT": "CreateBucket",
            "DELETE": "DeleteBucket",
        }.get(method, method)
    return S3Request(method, operation, bucket, key, part_number, upload_id)


@dataclass
class Fault:
    """A rule: requests of `operation` (optionally only part `part_number`, only keys
    ending in `key_suffix`) get `action`, `times` times (None: every time)."""

    operation: str
    action: str
    part_number: int | None = None
    key_suffix: str | None = None
    times: int | None = None
    seconds: float = 0.0  # delay
    keep: float = 0.5  # truncate: the fraction of the body sent
    status: int = 500
    code: str = "InternalError"
    hits: int = 0  # how many requests it has applied to
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _released: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; one of {ACTIONS}")

    # -- the faults by name ----------------------------------------------------------------

    @classmethod
    def error(
        cls, operation: str, *, part_number: int | None = None, times: int | None = None
    ) -> Fault:
        return cls(operation, "error", part_number=part_number, times=times)

    @classmethod
    def no_such_upload(cls, operation: str = "CompleteMultipartUpload") -> Fault:
        """A 404 NoSuchUpload: what S3 answers for an upload id it no longer knows (one
        already completed or aborted)."""
        return cls(operation, "error", status=404, code="NoSuchUpload")

    @classmethod
    def drop(
        cls, operation: str, *, part_number: int | None = None, times: int | None = None
    ) -> Fault:
        return cls(operation, "drop", part_number=part_number, times=times)

    @classmethod
    def forward_then_error(cls, operation: str, *, times: int | None = None) -> Fault:
        return cls(operation, "forward_then_error", times=times)

    @classmethod
    def truncate(
        cls,
        operation: str = "GetObject",
        *,
        key_suffix: str | None = None,
        keep: float = 0.5,
        times: int | None = None,
    ) -> Fault:
        return cls(operation, "truncate", key_suffix=key_suffix, keep=keep, times=times)

    @classmethod
    def corrupt(cls, operation: str = "UploadPart", *, part_number: int | None = None) -> Fault:
        """Flip a byte in the middle of the body of every matching request."""
        return cls(operation, "corrupt", part_number=part_number)

    @classmethod
    def delay(cls, operation: str, seconds: float, *, times: int | None = None) -> Fault:
        return cls(operation, "delay", seconds=seconds, times=times)

    def release(self) -> None:
        """End this delay now for the requests it holds, and skip it from now on."""
        self._released.set()

    def hold(self) -> None:
        """Wait out the delay, or until released."""
        self._released.wait(self.seconds)

    def claim(self, request: S3Request) -> bool:
        """Whether this rule applies to `request` (counting it as a hit if so)."""
        if request.operation != self.operation:
            return False
        if self.part_number is not None and request.part_number != self.part_number:
            return False
        if self.key_suffix is not None and not request.key.endswith(self.key_suffix):
            return False
        with self._lock:
            if self.times is not None and self.hits >= self.times:
                return False
            if self.action == "delay" and self._released.is_set():
                return False
            self.hits += 1
            return True


@dataclass(frozen=True)
class Seen:
    """A request the proxy handled and what it did with it."""

    request: S3Request
    action: str  # "forwarded" or a fault action
    status: int | None  # what the client was answered (None: nothing, the connection closed)


class S3FaultProxy:
    """A threaded HTTP proxy to `upstream` (an S3 endpoint URL) that injects faults."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {upstream!r}")
        self.upstream = (parts.hostname, parts.port or 80)
        self._faults: list[Fault] = []
        self._seen: list[Seen] = []
        self._arrived: list[S3Request] = []
        self._lock = threading.RLock()  # predicates of wait_for read under it
        self._changed = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET address: (str, int)
        return f"http://{host}:{port}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> S3FaultProxy:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="s3-fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self.clear()  # releases held requests
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> S3FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- rules -----------------------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        fault.release()
        with self._lock, suppress(ValueError):
            self._faults.remove(fault)

    def clear(self) -> None:
        """Remove every rule (releasing held requests): from now on everything is forwarded."""
        with self._lock:
            faults, self._faults = self._faults, []
        for fault in faults:
            fault.release()

    def forget(self) -> None:
        """Drop the record of requests so far (`seen`, `arrived`); rules stay."""
        with self._lock:
            self._seen.clear()
            self._arrived.clear()

    def seen(self, operation: str | None = None) -> list[Seen]:
        """Requests answered (or hung up on) so far, oldest first."""
        with self._lock:
            return [s for s in self._seen if operation in (None, s.request.operation)]

    def arrived(self, operation: str | None = None) -> list[S3Request]:
        """Requests received so far, answered or not (a held one is here, not in `seen`)."""
        with self._lock:
            return [r for r in self._arrived if operation in (None, r.operation)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds, re-checked whenever a request arrives or is
        answered; False if `timeout` seconds pass first."""
        with self._changed:
            return bool(self._changed.wait_for(predicate, timeout))

    def _match(self, request: S3Request) -> Iterator[Fault]:
        with self._lock:
            faults = list(self._faults)
        return (f for f in faults if f.claim(request))

    def _record(self, seen: Seen) -> None:
        with self._changed:
            self._seen.append(seen)
            self._changed.notify_all()

    def _arrive(self, request: S3Request) -> None:
        with self._changed:
            self._arrived.append(request)
            self._changed.notify_all()

    # -- the handler -----------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive and 100-continue, as S3 speaks

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the proxy's own record is `seen`

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP]
                    return resp.status, resp.reason, kept, data
                finally:
                    conn.close()

            def _answer(
                self, status: int, reason: str, headers: list[tuple[str, str]], data: bytes
            ) -> None:
                self.send_response_only(status, reason)
                length_sent = False
                for name, value in headers:
                    if name.lower() == "content-length":
                        if self.command == "HEAD":
                            self.send_header(name, value)
                            length_sent = True
                        continue
                    self.send_header(name, value)
                if not length_sent:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _error(self, fault: Fault) -> None:
                body = s3_error_body(fault.code)
                self._answer(
                    fault.status,
                    HTTPStatus(fault.status).phrase,
                    [("Content-Type", "application/xml")],
                    body,
                )

            def _hang_up(self) -> None:
                self.close_connection = True
                with suppress(OSError):
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _handle(self) -> None:
                request = classify(self.command, self.path)
                body = self._body()
                proxy._arrive(request)
                chosen: Fault | None = None
                for fault in proxy._match(request):
                    if fault.action == "delay":
                        fault.hold()
                        continue
                    chosen = fault
                    break
                if chosen is None:
                    self._pass_on(request, body)
                    return
                action = chosen.action
                if action == "error":
                    self._error(chosen)
                    proxy._record(Seen(request, action, chosen.status))
                    return
                if action == "drop":
                    proxy._record(Seen(request, action, None))
                    self._hang_up()
                    return
                if action == "corrupt" and body:
                    damaged = bytearray(body)
                    damaged[len(body) // 2] ^= 0x01
                    body = bytes(damaged)
                forwarded = self._forward_or_502(request, body)
                if forwarded is None:
                    return
                status, reason, headers, data = forwarded
                if action == "corrupt":
                    proxy._record(Seen(request, action, status))
                    self._answer(status, reason, headers, data)
                    return
                if action == "forward_then_error":
                    proxy._record(Seen(request, action, chosen.status))
                    self._error(chosen)
                    return
                if action == "truncate" and status == 200 and data:
                    keep = max(0, min(len(data) - 1, int(len(data) * chosen.keep)))
                    proxy._record(Seen(request, action, status))
                    self.send_response_only(status, reason)
                    for name, value in headers:
                        if name.lower() != "content-length":
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))  # promises it all
                    self.end_headers()
                    with suppress(OSError):
                        self.wfile.write(data[:keep])
                    self._hang_up()
                    return
                proxy._record(Seen(request, "forwarded", status))
                self._answer(status, reason, headers, data)

            def _forward_or_502(
                self, request: S3Request, body: bytes
            ) -> tuple[int, str, list[tuple[str, str]], bytes] | None:
                try:
                    return self._forward(body)
                except OSError as exc:
                    self._answer(
                        502, "Bad Gateway", [], s3_error_body("BadGateway", f"upstream: {exc}")
                    )
                    proxy._record(Seen(request, "upstream-unreachable", 502))
                    return None

            def _pass_on(self, request: S3Request, body: bytes) -> None:
                forwarded = self._forward_or_502(request, body)
                if forwarded is not None:
                    status, reason, headers, data = forwarded
                    proxy._record(Seen(request, "forwarded", status))
                    self._answer(status, reason, headers, data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        return Handler
