"""The front door on its own, under a WSGI server that hands over a body of unknown length
(a terminated stream): it reads one byte past the limit at most, and bolt sees only
signed bodies, unchanged."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from typing import Any

from backupbot.bot.slack.inbound import MAX_BODY, verified
from backupbot.devkit.slack_signer import slack_signature

SECRET = "inbound-unit-secret"


class CountingStream(io.BytesIO):
    """A request body that counts how much of it was read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk


def _call(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> tuple[str, bytes]:
    seen: list[str] = []
    body = b"".join(app(environ, lambda status, _headers, _exc=None: seen.append(status)))
    return seen[0], body


def _inner(received: list[bytes]) -> Callable[..., Iterable[bytes]]:
    def handler(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        received.append(environ["wsgi.input"].read())
        start_response("200 OK", [])
        return [b"ok"]

    return handler


def _environ(body: CountingStream, signature: str, length: str | None) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "POST",
        "wsgi.input": body,
        "wsgi.input_terminated": True,
        "HTTP_X_SLACK_REQUEST_TIMESTAMP": str(int(time.time())),
        "HTTP_X_SLACK_SIGNATURE": signature,
    }
    if length is not None:
        environ["CONTENT_LENGTH"] = length
    return environ


def test_a_body_of_unknown_length_is_cut_off_one_byte_past_the_limit() -> None:
    stream = CountingStream(b"z" * (10 * MAX_BODY))
    received: list[bytes] = []

    status, _ = _call(verified(_inner(received), SECRET), _environ(stream, "v0=x", None))

    assert status.startswith("413")
    assert stream.taken == MAX_BODY + 1
    assert received == []


def test_a_signed_body_of_unknown_length_reaches_bolt_unchanged() -> None:
    body = b"payload=%7B%7D"
    ts = int(time.time())
    stream = CountingStream(body)
    environ = _environ(stream, slack_signature(SECRET, ts, body), None)
    environ["HTTP_X_SLACK_REQUEST_TIMESTAMP"] = str(ts)
    received: list[bytes] = []

    status, answer = _call(verified(_inner(received), SECRET), environ)

    assert (status, answer, received) == ("200 OK", b"ok", [body])


def test_bad_lengths_timestamps_and_bodies_never_reach_bolt() -> None:
    received: list[bytes] = []
    app = verified(_inner(received), SECRET)
    cases = {
        "400": _environ(CountingStream(b"a=1"), "v0=x", "12abc"),
        "413": _environ(CountingStream(b""), "v0=x", str(MAX_BODY + 1)),
    }
    not_utf8 = b"\xff\xfe"
    unsigned = _environ(CountingStream(not_utf8), slack_signature(SECRET, 1, not_utf8), "2")
    unsigned["HTTP_X_SLACK_REQUEST_TIMESTAMP"] = "not-a-number"
    cases["401"] = unsigned

    for expected, environ in cases.items():
        status, _ = _call(app, environ)
        assert status.startswith(expected), (expected, status)
    no_secret = verified(_inner(received), None)  # nothing is let through
    assert _call(no_secret, _environ(CountingStream(b""), "", "0"))[0].startswith("401")
    assert received == []
