"""The front door for Slack's HTTP requests, in front of bolt.

Before anything parses a request, its raw bytes are checked: a body over `MAX_BODY`
(64 KB; Slack's own are a few KB) is refused with 413 without being read in full (by its
Content-Length, or by reading one byte past the limit when it has none), and one whose
`X-Slack-Signature` does not match its bytes and `X-Slack-Request-Timestamp`, or whose
timestamp is more than 5 minutes off, gets 401 (slack-sdk's `SignatureVerifier`). Only
then does bolt see it. A signed request bolt cannot handle gets 400. Refusals are logged
by size and reason; no body, nor any part of one, is ever logged.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterable
from typing import IO, Any

from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _answer(
    start_response: Callable[..., Any], status: str, text: str, exc_info: Any = None
) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")], exc_info)
    return [text.encode("utf-8")]


def _read(stream: IO[bytes], length: int | None, limit: int) -> bytes | None:
    """The body: `length` bytes, or (no length given) up to its end; None once it passes
    `limit`, having read at most one byte beyond it."""
    want = limit + 1 if length is None else length
    chunks: list[bytes] = []
    got = 0
    while got < want:
        chunk = stream.read(min(want - got, 16 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return None if got > limit else b"".join(chunks)


def _signed(verifier: SignatureVerifier | None, body: bytes, environ: dict[str, Any]) -> bool:
    timestamp = str(environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", ""))
    signature = str(environ.get("HTTP_X_SLACK_SIGNATURE", ""))
    if verifier is None or not timestamp.isdigit() or len(timestamp) > 12 or not signature:
        return False
    try:
        return verifier.is_valid(body, timestamp, signature)
    except UnicodeDecodeError:  # not UTF-8: nothing Slack sends, nothing bolt can read
        return False


def verified(handler: WsgiApp, signing_secret: str | None, limit: int = MAX_BODY) -> WsgiApp:
    """`handler` (bolt's) behind the checks above. Without a signing secret every request
    is refused."""
    verifier = SignatureVerifier(signing_secret) if signing_secret else None

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, "405 Method Not Allowed", "POST only\n")
        declared = str(environ.get("CONTENT_LENGTH") or "")
        if declared and not declared.isdigit():
            return _answer(start_response, "400 Bad Request", "bad Content-Length\n")
        length = int(declared) if declared else None
        if length is None and not environ.get("wsgi.input_terminated"):
            length = 0  # WSGI: no Content-Length and no terminated stream means no body
        too_large = f"request body over {limit // 1024} KB\n"
        if length is not None and length > limit:
            _refused("too large", length, environ)
            return _answer(start_response, "413 Request Entity Too Large", too_large)
        body = _read(environ["wsgi.input"], length, limit)
        if body is None:
            _refused("too large", limit + 1, environ)
            return _answer(start_response, "413 Request Entity Too Large", too_large)
        if not _signed(verifier, body, environ):
            _refused("bad or stale signature", len(body), environ)
            return _answer(start_response, "401 Unauthorized", "invalid request\n")
        inner = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        try:
            return handler(inner, start_response)
        except Exception as exc:  # a signed request bolt could not read: no traceback, no body
            log.error("a signed Slack request could not be handled (%s)", type(exc).__name__)
            return _answer(
                start_response, "400 Bad Request", "unreadable request\n", sys.exc_info()
            )

    return application


def _refused(why: str, size: int, environ: dict[str, Any]) -> None:
    log.warning(
        "refused a request to the Slack endpoint: %s",
        why,
        extra={"bytes": size, "remote": environ.get("REMOTE_ADDR")},
    )
