"""What the real `backupbot serve` (HTTP mode) does with requests nobody should trust:
forged or stale signatures, bodies that are not what Slack sends, bodies far larger than
Slack's. Each is refused before anything parses it, the log says so in one short line
and never holds the body, memory does not grow with it, and the bot goes on serving.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from backupbot.devkit.slack_signer import slack_signature
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REQUESTER, WAIT, Deployment

FORM = "application/x-www-form-urlencoded"
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def http_deployment(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    url, _counts = source_database(pg)
    with SlackStandin() as standin:
        dep = fresh_deployment(
            ("http", "sqlite"),
            pg,
            standin,
            tmp_path_factory.mktemp("inbound"),
            databases={"app": url},
        )
        dep.start()
        yield dep
        dep.close()


def _still_serving(dep: Deployment) -> None:
    answer = dep.slash(REQUESTER, "help")
    assert answer.status == 200 and "/backup now" in json.dumps(answer.json())


def _rss_kb(dep: Deployment) -> int:
    assert dep.serve is not None
    status = Path(f"/proc/{dep.serve.pid}/status").read_text(encoding="ascii")
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def _connect(dep: Deployment) -> socket.socket:
    assert dep.serve is not None
    where = urlsplit(dep.serve.url)
    sock = socket.create_connection((where.hostname, where.port), timeout=WAIT)
    return sock


def _head(dep: Deployment, headers: dict[str, str]) -> bytes:
    lines = ["POST /slack/events HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _status_line(sock: socket.socket) -> str:
    """The response's status line (reads until it has one, or the peer closes)."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def _log_growth(dep: Deployment, before: int) -> str:
    assert dep.serve is not None
    return dep.serve.log_text()[before:]


def test_a_forged_click_whose_payload_is_not_json_gets_401_and_no_traceback(
    http_deployment: Deployment,
) -> None:
    dep = http_deployment
    assert dep.serve is not None
    start = len(dep.serve.log_text())
    client = dep.client()
    body = b"payload=%7Bnot-json"

    forged = client.send_raw(body, FORM, signature="v0=" + "0" * 64)

    assert forged.status == 401
    log = _log_growth(dep, start)
    assert "Traceback" not in log and "not-json" not in log
    assert "refused a request to the Slack endpoint: bad or stale signature" in log
    _still_serving(dep)


def test_a_signed_request_from_more_than_five_minutes_ago_gets_401(
    http_deployment: Deployment,
) -> None:
    dep = http_deployment
    fields = {"command": "/backup", "text": "help", "user_id": REQUESTER, "channel_id": "C0X"}
    body = urlencode(fields).encode()
    stale = int(time.time()) - 6 * 60
    client = dep.client()

    signature = slack_signature(dep.exported["SLACK_SIGNING_SECRET"], stale, body)

    answer = client.send_raw(body, FORM, timestamp=stale, signature=signature)

    assert answer.status == 401


def test_a_correctly_signed_body_bolt_cannot_read_gets_400_without_a_traceback(
    http_deployment: Deployment,
) -> None:
    dep = http_deployment
    assert dep.serve is not None
    start = len(dep.serve.log_text())
    client = dep.client()

    answer = client.send_raw(b"payload=%7Bnot-json-" + secrets.token_hex(8).encode(), FORM)

    assert answer.status == 400
    log = _log_growth(dep, start)
    assert "Traceback" not in log and "not-json" not in log
    assert "could not be handled (JSONDecodeError)" in log
    _still_serving(dep)


def test_a_body_declared_over_64_kb_is_refused_with_413_before_it_is_sent(
    http_deployment: Deployment,
) -> None:
    dep = http_deployment
    body_size = LIMIT + 1
    with _connect(dep) as sock:
        headers = {"Content-Type": FORM, "Content-Length": str(body_size)}
        sock.sendall(_head(dep, headers))  # the headers only: no byte of the body
        assert _status_line(sock) == "HTTP/1.1 413 Request Entity Too Large"

    exactly = b"x" * LIMIT  # at the limit: read, then judged by its signature
    client = dep.client()
    assert client.send_raw(exactly, FORM, signature="v0=bad").status == 401
    _still_serving(dep)


def test_a_chunked_body_is_refused_with_413_once_64_kb_of_it_arrived(
    http_deployment: Deployment,
) -> None:
    dep = http_deployment
    # one chunk that says 0xffff bytes follow, cut off one byte past the limit: the bot
    # must refuse it from what arrived, without waiting for the rest
    framing = b"ffff\r\n"
    partial = b"y" * (LIMIT + 1 - len(framing))
    with _connect(dep) as sock:
        headers = {"Content-Type": FORM, "Transfer-Encoding": "chunked"}
        sock.sendall(_head(dep, headers) + framing + partial)
        assert _status_line(sock) == "HTTP/1.1 413 Request Entity Too Large"
    _still_serving(dep)


def _send_whole(dep: Deployment, head: bytes, body: bytes) -> None:
    """Send `head` and all of `body` as a client that does not listen would; the bot may
    answer and close early, which ends the sending."""
    with _connect(dep) as sock:
        try:
            sock.sendall(head)
            for i in range(0, len(body), 64 * 1024):
                sock.sendall(body[i : i + 64 * 1024])
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):
                pass
        except OSError:  # reset by the bot after its 413
            pass


def test_forged_2_mb_bodies_leave_the_log_small_without_any_of_them_and_memory_flat(
    http_deployment: Deployment,
) -> None:
    dep = http_deployment
    assert dep.serve is not None
    _still_serving(dep)
    log_before = len(dep.serve.log_text())
    rss_before = _rss_kb(dep)
    marker = "forged" + secrets.token_hex(6)
    body = urlencode({"payload": json.dumps({"type": "block_actions", "x": marker * 170_000})})
    raw = body.encode()
    assert len(raw) > 2_000_000

    sent = []
    for chunked in (False, True) * 5:
        headers = {"Content-Type": FORM, "X-Slack-Signature": "v0=forged"}
        headers["X-Slack-Request-Timestamp"] = str(int(time.time()))
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
            payload = b"".join(
                b"%x\r\n%s\r\n" % (len(raw[i : i + 32768]), raw[i : i + 32768])
                for i in range(0, len(raw), 32768)
            )
            payload += b"0\r\n\r\n"
        else:
            headers["Content-Length"] = str(len(raw))
            payload = raw
        worker = threading.Thread(target=_send_whole, args=(dep, _head(dep, headers), payload))
        worker.start()
        worker.join(WAIT)
        sent.append(not worker.is_alive())
    assert all(sent), "the bot kept a forged body's connection open"
    _still_serving(dep)

    grown = _log_growth(dep, log_before)
    assert marker not in grown and marker[len("forged") :] not in grown
    assert len(grown) < 20_000, f"the log grew by {len(grown)} bytes"
    assert _rss_kb(dep) - rss_before < 32 * 1024, "memory grew with the forged bodies"
