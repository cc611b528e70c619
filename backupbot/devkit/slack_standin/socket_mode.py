"""Slack's side of Socket Mode: single-use connection tickets, the `hello`, envelopes
delivered until acknowledged (redelivered after a dropped connection), and the network
cuts and refresh requests tests use to exercise reconnection."""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import logging
import socket
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server as WsServer
from websockets.sync.server import ServerConnection

from backupbot.devkit.slack_standin.records import APP_ID
from backupbot.devkit.slack_standin.state import StandinState

log = logging.getLogger(__name__)

SOCKET_PATH = "/link/"
_SOCKET_HOST = "standin-socket"
# `retry_reason` of a redelivered envelope: one of the Events API's retry reasons.
SOCKET_RETRY_REASON = "connection_failed"


@dataclass
class _SocketLink:
    """One accepted Socket Mode connection; `open` turns False once it is closed or dropped."""

    number: int
    ws: ServerConnection
    open: bool = True


@dataclass
class _PendingEnvelope:
    """An envelope `send_envelope` is waiting on; `ack` is set when its ack arrives."""

    envelope_id: str
    ack: dict[str, Any] | None = None


class SocketMode(StandinState):
    """The Socket Mode part of `SlackStandin`."""

    _ws_server: WsServer | None
    _tickets: set[str]  # issued by apps.connections.open, each good for one handshake
    _links: list[_SocketLink]  # open connections, oldest first
    _link_numbers: itertools.count[int]
    _envelopes: dict[str, _PendingEnvelope]
    _sockets_opened: int

    @property
    def socket_root_url(self) -> str:
        """`ws://host:port` of the running Socket Mode server."""
        if self._ws_server is None:
            raise RuntimeError("SlackStandin is not running; call start() first")
        host, port = self._ws_server.socket.getsockname()[:2]
        return f"ws://{host}:{port}"

    # -- Socket Mode -----------------------------------------------------------------------

    def send_envelope(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = True,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Deliver one Socket Mode envelope and return its ack's `payload` (`{}` if bare).

        The envelope goes to the newest open connection; with none open it waits for one.
        If that connection closes before the ack arrives, the envelope (same `envelope_id`)
        is delivered again on the next connection with `retry_attempt` incremented and
        `retry_reason` set, as Slack does. An ack counts whichever connection it arrives on.
        Raises TimeoutError if no ack arrives within `timeout` seconds.
        """
        pending = _PendingEnvelope(str(uuid.uuid4()))
        deadline = time.monotonic() + timeout
        with self._changed:
            self._envelopes[pending.envelope_id] = pending
        try:
            for attempt in itertools.count():
                link = self._await_link(pending, deadline)
                if link is None:
                    break  # a late ack from an earlier delivery arrived meanwhile
                envelope = {
                    "envelope_id": pending.envelope_id,
                    "type": type,
                    "payload": copy.deepcopy(payload),
                    "accepts_response_payload": accepts_response_payload,
                    "retry_attempt": attempt,
                    "retry_reason": SOCKET_RETRY_REASON if attempt else "",
                }
                try:
                    link.ws.send(json.dumps(envelope))
                except ConnectionClosed:
                    self._forget_link(link)
                if self._await_ack(pending, link, deadline):
                    break
                log.debug("slack standin: connection %d closed before the ack", link.number)
            with self._lock:
                assert pending.ack is not None
                return copy.deepcopy(pending.ack)
        except TimeoutError as err:
            raise TimeoutError(
                f"{type} envelope {pending.envelope_id} not acknowledged within {timeout}s: {err}"
            ) from None
        finally:
            with self._changed:
                self._envelopes.pop(pending.envelope_id, None)

    def _await_link(self, pending: _PendingEnvelope, deadline: float) -> _SocketLink | None:
        """The newest open connection, waiting for one; None if `pending` got its ack."""
        with self._changed:
            if not self._changed.wait_for(
                lambda: pending.ack is not None or bool(self._links),
                max(0.0, deadline - time.monotonic()),
            ):
                raise TimeoutError("no Socket Mode client connected")
            return None if pending.ack is not None else self._links[-1]

    def _await_ack(self, pending: _PendingEnvelope, link: _SocketLink, deadline: float) -> bool:
        """True once `pending` is acked, False if `link` closed first."""
        with self._changed:
            if not self._changed.wait_for(
                lambda: pending.ack is not None or not link.open,
                max(0.0, deadline - time.monotonic()),
            ):
                raise TimeoutError(f"no ack on Socket Mode connection {link.number}")
            return pending.ack is not None

    def drop_socket_connections(self) -> int:
        """Cut every open Socket Mode connection abruptly (TCP reset, no `disconnect`, no
        close frame), as a network failure would; returns how many were cut."""
        with self._changed:
            links = list(self._links)
            for link in links:
                link.open = False
            self._links.clear()
            self._changed.notify_all()
        for link in links:
            with contextlib.suppress(OSError):
                # Linger 0: closing sends RST instead of FIN.
                link.ws.socket.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            link.ws.close_socket()
        return len(links)

    def request_refresh(self, reason: str = "refresh_requested") -> int:
        """Send `{"type": "disconnect", "reason": reason}` on every open connection, as Slack
        does before rotating one; returns how many were told. The connections stay open: the
        client is expected to open a new one and close the old."""
        message = json.dumps(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": _SOCKET_HOST}}
        )
        with self._lock:
            links = list(self._links)
        told = 0
        for link in links:
            try:
                link.ws.send(message)
                told += 1
            except ConnectionClosed:
                self._forget_link(link)
        return told

    def socket_connections_opened(self) -> int:
        """How many Socket Mode connections were accepted (and greeted) since start or reset."""
        with self._lock:
            return self._sockets_opened

    def socket_connected(self) -> bool:
        """Whether a Socket Mode connection is open now."""
        with self._lock:
            return bool(self._links)

    def wait_for_socket(self, timeout: float = 10.0) -> bool:
        """Block until a Socket Mode connection is open; False on timeout."""
        return self.wait_for(self.socket_connected, timeout)

    def _check_ticket(self, connection: ServerConnection, request: Request) -> Response | None:
        """Accept the WebSocket handshake only for an unused ticket (each works once)."""
        url = urlsplit(request.path)
        if url.path.rstrip("/") != SOCKET_PATH.rstrip("/"):
            return connection.respond(404, "not_found")
        ticket = (parse_qs(url.query).get("ticket") or [""])[0]
        with self._changed:
            valid = ticket in self._tickets
            self._tickets.discard(ticket)
            self._changed.notify_all()
        if not valid:
            log.debug("slack standin: refused Socket Mode ticket %r", ticket)
            return connection.respond(401, "invalid_ticket")
        return None

    def _serve_socket(self, ws: ServerConnection) -> None:
        """One connection's life: hello, then acks until it closes."""
        with self._lock:
            number = next(self._link_numbers)
            count = len(self._links) + 1
        hello = {
            "type": "hello",
            "num_connections": count,
            "connection_info": {"app_id": APP_ID},
            "debug_info": {
                "host": _SOCKET_HOST,
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
        }
        link = _SocketLink(number, ws)
        try:
            ws.send(json.dumps(hello))
            with self._changed:  # only greeted connections get envelopes
                self._links.append(link)
                self._sockets_opened += 1
                self._changed.notify_all()
            for message in ws:
                self._on_socket_message(link, message)
        except ConnectionClosed:
            pass
        finally:
            self._forget_link(link)

    def _on_socket_message(self, link: _SocketLink, message: str | bytes) -> None:
        try:
            data = json.loads(message)
        except ValueError:
            log.debug("slack standin: non-JSON frame on connection %d", link.number)
            return
        if not isinstance(data, dict):
            return
        with self._changed:
            pending = self._envelopes.get(str(data.get("envelope_id")))
            if pending is None or pending.ack is not None:
                log.debug("slack standin: ack for no pending envelope: %r", data)
                return
            ack = data.get("payload")
            pending.ack = copy.deepcopy(ack) if isinstance(ack, dict) else {}
            self._changed.notify_all()

    def _forget_link(self, link: _SocketLink) -> None:
        with self._changed:
            link.open = False
            if link in self._links:
                self._links.remove(link)
            self._changed.notify_all()

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        url = f"{self.socket_root_url}{SOCKET_PATH}?ticket={ticket}&app_id={APP_ID}"
        return {"url": url}
