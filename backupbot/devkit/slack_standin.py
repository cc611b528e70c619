"""A stand-in for Slack's Web API and Socket Mode, served over real HTTP on localhost.

`SlackStandin` answers the Web API methods backupbot uses under `/api/<method>`, so a real
`slack_sdk.WebClient(base_url=standin.base_url)` can talk to it, and accepts posts to the
`response_url`s it hands out. It records what it receives (messages with their edit history,
ephemerals, Home tab views, response_url posts, every call) and enforces the Block Kit limits
that make real Slack reject a message, so code that passes here does not fail there for size.

It also plays Slack's side of Socket Mode: `apps.connections.open` (with the app-level token)
hands out a single-use `ws://` URL to a WebSocket server built on the `websockets` library,
which greets each connection with `hello` as Slack does. `send_envelope` pushes a
`slash_commands`/`interactive`/`events_api` envelope to one connected client and waits for
its ack; nothing is lost: with no client connected it waits for one, and an envelope whose
connection drops before the ack is redelivered on the next one with `retry_attempt` raised.
`drop_socket_connections` (a network cut) and `request_refresh` (Slack rotating a link) let
tests exercise reconnection. Both servers run in daemon threads.

Faults can be injected per Web API method, for a number of calls, for a while, or until
`clear_faults`: `rate_limit` (HTTP 429 with `Retry-After`), `server_error` (HTTP 5xx) and
`api_error` (`ok: false` with an error such as `channel_not_found`, optionally only for
one channel). Faulted calls are recorded like the others and change nothing. Without
faults the stand-in behaves as before.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import logging
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server as _WsServer
from websockets.sync.server import ServerConnection, serve

log = logging.getLogger(__name__)

MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ACTION_ID = 255
MAX_BLOCK_ID = 255
MAX_MESSAGE_TEXT = 40000
RESPONSE_URL_MAX_USES = 5

_JSON_TYPE = "application/json; charset=utf-8"
_TEXT_TYPE = "text/plain; charset=utf-8"
_WORKSPACE_URL = "https://standin.slack.com/"
_BOT_ID = "B0STANDIN"
_APP_ID = "A0STANDIN"
_FIRST_TS_MICROS = 1_700_000_000_000_000
_SOCKET_PATH = "/link/"
_SOCKET_HOST = "standin-socket"
# `retry_reason` of a redelivered envelope: one of the Events API's retry reasons.
SOCKET_RETRY_REASON = "connection_failed"


@dataclass
class PostedMessage:
    """One channel message as it stands now; `history` holds earlier versions, oldest first."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Ephemeral:
    """A message only `user` sees in `channel`."""

    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]]
    ts: str = ""
    thread_ts: str | None = None


@dataclass
class ResponseUrlPost:
    """A JSON body accepted at the response_url with this `id`."""

    id: str
    body: dict[str, Any]


@dataclass
class _Fault:
    """An injected failure of one Web API method: the HTTP status and error to answer,
    for `remaining` more calls (None: any number) until `until` (monotonic; None: no end),
    only for `channel` when set."""

    status: int
    error: str
    retry_after: int | None = None
    remaining: int | None = None
    until: float | None = None
    channel: str | None = None

    def active(self, now: float) -> bool:
        return (self.remaining is None or self.remaining > 0) and (
            self.until is None or now < self.until
        )


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


def block_kit_errors(blocks: Any, max_blocks: int = MAX_BLOCKS) -> list[str]:
    """Slack-style `invalid_blocks` messages for `blocks`; empty if Slack would accept them."""
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        path = f"/blocks/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"missing required field: type [json-pointer:{path}]")
            continue
        _check_length(errors, block.get("block_id"), MAX_BLOCK_ID, f"{path}/block_id", 1)
        if block["type"] == "section":
            text = _text_of(block.get("text"))
            _check_length(errors, text, MAX_SECTION_TEXT, f"{path}/text/text")
            fields = block.get("fields")
            if isinstance(fields, list):
                if len(fields) > MAX_SECTION_FIELDS:
                    limit = f"no more than {MAX_SECTION_FIELDS} items allowed"
                    errors.append(f"{limit} [json-pointer:{path}/fields]")
                for j, item in enumerate(fields):
                    _check_length(errors, _text_of(item), MAX_FIELD_TEXT, f"{path}/fields/{j}/text")
            elif "text" not in block:
                errors.append(f"must provide either text or fields [json-pointer:{path}]")
        elif block["type"] == "header":
            _check_length(errors, _text_of(block.get("text")), MAX_HEADER_TEXT, f"{path}/text/text")
        _check_elements(block, path, errors)
    return errors


def _text_of(obj: Any) -> Any:
    """The `text` string of a text object, or None when `obj` is not one."""
    return obj.get("text") if isinstance(obj, dict) else None


def _check_length(
    errors: list[str], value: Any, limit: int, pointer: str, minimum: int = 1
) -> None:
    """Append an error if `value` is a string outside [minimum, limit] characters."""
    if not isinstance(value, str):
        return
    if len(value) > limit:
        errors.append(f"must be less than {limit + 1} characters [json-pointer:{pointer}]")
    elif len(value) < minimum:
        errors.append(f"must be more than {minimum - 1} characters [json-pointer:{pointer}]")


def _check_elements(node: Any, path: str, errors: list[str]) -> None:
    """Walk every nested element (accessories, actions, context, inputs) checking their limits."""
    if isinstance(node, dict):
        if "action_id" in node:
            _check_length(errors, node["action_id"], MAX_ACTION_ID, f"{path}/action_id")
        if node.get("type") == "button":
            _check_length(errors, node.get("value"), MAX_BUTTON_VALUE, f"{path}/value", 0)
            _check_length(errors, _text_of(node.get("text")), MAX_BUTTON_TEXT, f"{path}/text/text")
        for key, child in node.items():
            if isinstance(child, dict | list):
                _check_elements(child, f"{path}/{key}", errors)
    elif isinstance(node, list):
        for i, child in enumerate(node):
            _check_elements(child, f"{path}/{i}", errors)


class _ApiError(Exception):
    """A Web API failure: `{"ok": false, "error": error, **extra}`."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _parse_params(query: str, body: bytes, content_type: str) -> dict[str, Any]:
    """Merge query-string and body parameters; JSON-string `blocks`/`attachments`/`view` decoded."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    mime = content_type.split(";")[0].strip().lower()
    if body:
        if mime == "application/json":
            try:
                data = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as err:
                raise _ApiError("invalid_json") from err
            if not isinstance(data, dict):
                raise _ApiError("invalid_json")
            params.update(data)
        elif mime in ("application/x-www-form-urlencoded", ""):
            try:
                params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError as err:
                raise _ApiError("invalid_form_data") from err
        else:
            raise _ApiError("invalid_form_data")
    for key in ("blocks", "attachments", "view"):
        value = params.get(key)
        if isinstance(value, str) and value:
            with contextlib.suppress(ValueError):  # else left a string; the method rejects it
                params[key] = json.loads(value)
    return params


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], standin: SlackStandin) -> None:
        self.standin = standin
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
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


class SlackStandin:
    """Slack's Web API and response_urls for one workspace, over HTTP on `host`:`port`,
    and Socket Mode over a WebSocket server on a free port of `host`.

    Port 0 picks a free port. Use as a context manager or call `start()`/`stop()`.
    """

    def __init__(
        self,
        bot_token: str = "xoxb-standin",
        team_id: str = "T0STANDIN",
        bot_user_id: str = "U0BOT",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        response_url_max_uses: int = RESPONSE_URL_MAX_USES,
        app_token: str = "xapp-standin",
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.response_url_max_uses = response_url_max_uses
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ws_server: _WsServer | None = None
        self._ws_thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._ts_counter = itertools.count(1)
        self._response_url_uses: dict[str, int] = {}
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.open": self._conversations_open,
            "views.publish": self._views_publish,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
        }
        # Methods that take the app-level (xapp-) token instead of the bot token.
        self._app_methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "apps.connections.open": self._apps_connections_open,
        }
        # Socket Mode state is live, not a record: reset() leaves it alone.
        self._tickets: set[str] = set()
        self._links: list[_SocketLink] = []  # open connections, oldest first
        self._link_numbers = itertools.count(1)
        self._envelopes: dict[str, _PendingEnvelope] = {}
        self._clear()

    def _clear(self) -> None:
        self._messages: list[PostedMessage] = []
        self._by_key: dict[tuple[str, str], PostedMessage] = {}
        self._ephemerals: list[Ephemeral] = []
        self._response_posts: list[ResponseUrlPost] = []
        self._views: dict[str, list[dict[str, Any]]] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._guests: dict[str, bool] = {}  # user id -> single-channel guest
        self._faults: dict[str, list[_Fault]] = {}
        self._held: set[str] = set()
        self._calls: list[tuple[str, dict[str, Any]]] = []
        self._sockets_opened = 0
        self._response_url_uses = dict.fromkeys(self._response_url_uses, 0)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SlackStandin:
        """Bind the ports and serve in daemon threads; returns self. A no-op if running."""
        if self._server is None:
            self._server = _Server(self._address, self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},  # how long stop() may wait for the loop
                name="slack-standin",
                daemon=True,
            )
            self._thread.start()
        if self._ws_server is None:
            self._ws_server = serve(
                self._serve_socket,
                self._address[0],
                0,
                process_request=self._check_ticket,
                compression=None,  # Slack's clients do not negotiate permessage-deflate
                close_timeout=2,
                logger=logging.getLogger(f"{__name__}.socket"),
            )
            # Connection threads inherit daemon=True from this thread, so a client left
            # connected never keeps the interpreter from exiting.
            self._ws_thread = threading.Thread(
                target=self._ws_server.serve_forever, name="slack-standin-socket", daemon=True
            )
            self._ws_thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the ports; open Socket Mode connections are closed."""
        server, thread = self._server, self._thread
        ws_server, ws_thread = self._ws_server, self._ws_thread
        self._server = self._thread = None
        self._ws_server = self._ws_thread = None
        if ws_server is not None:
            ws_server.shutdown()  # closes open connections (1001 going away) and waits
        if ws_thread is not None:
            ws_thread.join(timeout=5)
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> SlackStandin:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        """`http://host:port` of the running server."""
        if self._server is None:
            raise RuntimeError("SlackStandin is not running; call start() first")
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an AF_INET address: (str, int)
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """Web API root, for `slack_sdk.WebClient(base_url=...)`."""
        return f"{self.root_url}/api/"

    @property
    def socket_root_url(self) -> str:
        """`ws://host:port` of the running Socket Mode server."""
        if self._ws_server is None:
            raise RuntimeError("SlackStandin is not running; call start() first")
        host, port = self._ws_server.socket.getsockname()[:2]
        return f"ws://{host}:{port}"

    def new_response_url(self) -> str:
        """Issue a response_url; posts to it are recorded (up to `response_url_max_uses`)."""
        rid = uuid.uuid4().hex[:20]
        with self._lock:
            self._response_url_uses[rid] = 0
        return f"{self.root_url}/response/{rid}"

    # -- inspection and set-up -------------------------------------------------------------

    def messages(self, channel: str | None = None) -> list[PostedMessage]:
        """Channel messages in post order, current versions (copies)."""
        with self._lock:
            wanted = None if channel is None else self._resolve_channel(channel)
            return [copy.deepcopy(m) for m in self._messages if wanted in (None, m.channel)]

    def message(self, channel: str, ts: str) -> PostedMessage:
        """The message `ts` in `channel`; KeyError if there is none."""
        with self._lock:
            msg = self._by_key.get((self._resolve_channel(channel), ts))
            if msg is None:
                raise KeyError(f"no message {ts} in {channel}")
            return copy.deepcopy(msg)

    def thread(self, channel: str, thread_ts: str) -> list[PostedMessage]:
        """The thread's parent (if recorded) then its replies, as conversations.replies has them."""
        with self._lock:
            wanted = self._resolve_channel(channel)
            return [
                copy.deepcopy(m)
                for m in self._messages
                if m.channel == wanted and thread_ts in (m.ts, m.thread_ts)
            ]

    def ephemerals(self, channel: str | None = None, user: str | None = None) -> list[Ephemeral]:
        """Ephemeral messages in post order, optionally for one channel and/or user."""
        with self._lock:
            wanted = None if channel is None else self._resolve_channel(channel)
            return [
                copy.deepcopy(e)
                for e in self._ephemerals
                if wanted in (None, e.channel) and user in (None, e.user)
            ]

    def response_posts(self, response_url: str | None = None) -> list[ResponseUrlPost]:
        """Accepted response_url posts in order; `response_url` may be the URL or its id."""
        with self._lock:
            rid = None if response_url is None else response_url.rstrip("/").rsplit("/", 1)[-1]
            return [copy.deepcopy(p) for p in self._response_posts if rid in (None, p.id)]

    def published_views(self, user_id: str) -> list[dict[str, Any]]:
        """Every Home tab view published for `user_id`, oldest first (last is current)."""
        with self._lock:
            return copy.deepcopy(self._views.get(user_id, []))

    def set_guest(self, user_id: str, *, single_channel: bool = False) -> None:
        """Make `user_id` a multi-channel guest (`is_restricted`) or a single-channel one
        (`is_ultra_restricted`), as users.info reports them."""
        with self._lock:
            self._guests[user_id] = single_channel

    def set_usergroup(self, usergroup_id: str, user_ids: list[str]) -> None:
        """Define (or replace) a user group's members for usergroups.users.list."""
        with self._lock:
            self._usergroups[usergroup_id] = list(user_ids)

    def rate_limit(
        self,
        method: str,
        times: int | None = 1,
        retry_after: int = 1,
        *,
        seconds: float | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` (None: every call) with HTTP 429 and
        `Retry-After: retry_after`; with `seconds`, only for that long. Replaces the
        method's earlier faults."""
        self._set_fault(method, _Fault(429, "ratelimited", retry_after), times, seconds)

    def server_error(
        self,
        method: str,
        times: int | None = 1,
        status: int = 500,
        *,
        seconds: float | None = None,
    ) -> None:
        """Answer the next `times` calls of `method` (None: every call) with HTTP `status`
        and `{"ok": false, "error": "internal_error"}`; with `seconds`, only for that long.
        Replaces the method's earlier faults."""
        self._set_fault(method, _Fault(status, "internal_error"), times, seconds)

    def api_error(
        self,
        method: str,
        error: str,
        times: int | None = None,
        *,
        channel: str | None = None,
        seconds: float | None = None,
    ) -> None:
        """Answer calls of `method` (for `channel` only, when given) with HTTP 200 and
        `{"ok": false, "error": error}`, as Slack refuses a missing channel
        (`channel_not_found`) or a revoked token; every call unless `times` or `seconds`
        limit it. Replaces the method's earlier faults."""
        fault = _Fault(
            200, error, channel=None if channel is None else self._resolve_channel(channel)
        )
        self._set_fault(method, fault, times, seconds)

    def clear_faults(self, method: str | None = None) -> None:
        """Remove the injected faults of `method` (of every method when None), holds too."""
        with self._changed:
            if method is None:
                self._faults.clear()
                self._held.clear()
            else:
                self._faults.pop(method, None)
                self._held.discard(method)
            self._changed.notify_all()

    def hold(self, method: str) -> None:
        """Keep every call of `method` waiting (recorded in `calls()` on arrival) until
        `release`: a Slack that does not answer."""
        with self._changed:
            self._held.add(method)

    def release(self, method: str | None = None) -> None:
        """Answer the held calls of `method` (of every method when None)."""
        with self._changed:
            if method is None:
                self._held.clear()
            else:
                self._held.discard(method)
            self._changed.notify_all()

    def _set_fault(
        self, method: str, fault: _Fault, times: int | None, seconds: float | None
    ) -> None:
        fault.remaining = times
        fault.until = None if seconds is None else time.monotonic() + seconds
        with self._lock:
            self._faults[method] = [fault]

    def _take_fault(self, method: str, params: dict[str, Any]) -> _Fault | None:
        """The fault this call of `method` gets, counting it; None to answer normally."""
        now = time.monotonic()
        channel = params.get("channel")
        for fault in self._faults.get(method, []):
            if not fault.active(now):
                continue
            if fault.channel is not None and (
                not isinstance(channel, str) or self._resolve_channel(channel) != fault.channel
            ):
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
            return fault
        return None

    def calls(self, method: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Every request received as (method, params), rejected ones included.

        Posts to response_urls appear as ("response_url", body).
        """
        with self._lock:
            return [copy.deepcopy(c) for c in self._calls if method in (None, c[0])]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Block until `predicate()` is true (re-checked after each request); False on timeout."""
        with self._changed:
            return bool(self._changed.wait_for(predicate, timeout))

    def reset(self) -> None:
        """Forget everything recorded and configured (user groups, rate limits too).

        Issued response_urls stay valid with their use counts cleared; timestamps keep rising.
        Socket Mode connections, unused tickets and pending envelopes are live state and stay;
        `socket_connections_opened()` counts from zero again.
        """
        with self._changed:
            self._clear()
            self._changed.notify_all()

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
        if url.path.rstrip("/") != _SOCKET_PATH.rstrip("/"):
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
            "connection_info": {"app_id": _APP_ID},
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

    # -- request handling ------------------------------------------------------------------

    def _handle_api(
        self, method: str, query: str, body: bytes, content_type: str, authorization: str
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Answer one Web API request: (HTTP status, extra headers, JSON payload)."""
        with self._changed:
            try:
                params: dict[str, Any] = {}
                try:
                    params = _parse_params(query, body, content_type)
                finally:
                    self._calls.append((method, copy.deepcopy(params)))
                if method in self._held:  # a slow Slack: answer once released
                    self._changed.notify_all()
                    self._changed.wait_for(lambda: method not in self._held)
                fault = self._take_fault(method, params)
                if fault is not None:
                    headers = {}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = str(fault.retry_after)
                    return fault.status, headers, {"ok": False, "error": fault.error}
                token = self._token(params, authorization)
                handler = self._methods.get(method)
                if handler is not None:
                    self._check_auth(token, wanted=self.bot_token, other=self.app_token)
                else:
                    handler = self._app_methods.get(method)
                    if handler is None:
                        raise _ApiError("unknown_method")
                    self._check_auth(token, wanted=self.app_token, other=self.bot_token)
                return 200, {}, {"ok": True, **handler(params)}
            except _ApiError as err:
                return 200, {}, {"ok": False, "error": err.error, **err.extra}
            finally:
                self._changed.notify_all()

    def _handle_response_post(self, rid: str, body: bytes) -> tuple[int, str]:
        """Answer a response_url post: (HTTP status, plain-text body) as Slack does."""
        with self._changed:
            try:
                data = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                data = None
            try:
                self._calls.append(
                    ("response_url", copy.deepcopy(data) if isinstance(data, dict) else {})
                )
                uses = self._response_url_uses.get(rid)
                if uses is None:
                    return 404, "no_service"
                if uses >= self.response_url_max_uses:
                    return 404, "used_url"
                if not isinstance(data, dict):
                    return 400, "invalid_payload"
                if "blocks" in data and block_kit_errors(data["blocks"]):
                    return 400, "invalid_blocks"
                text = data.get("text") or ""
                if not isinstance(text, str):
                    return 400, "invalid_payload"
                if len(text) > MAX_MESSAGE_TEXT:
                    return 400, "msg_too_long"
                if not text and not data.get("blocks") and not data.get("delete_original"):
                    return 400, "no_text"
                self._response_url_uses[rid] = uses + 1
                self._response_posts.append(ResponseUrlPost(rid, copy.deepcopy(data)))
                return 200, "ok"
            finally:
                self._changed.notify_all()

    @staticmethod
    def _token(params: dict[str, Any], authorization: str) -> Any:
        """The request's token: the `Authorization: Bearer` one, else a `token` parameter."""
        if authorization.lower().startswith("bearer "):
            return authorization[len("bearer ") :].strip()
        return params.get("token")

    @staticmethod
    def _check_auth(token: Any, wanted: str, other: str) -> None:
        """Accept `wanted`; the workspace's `other` token is the wrong type; else invalid."""
        if token == wanted:
            return
        raise _ApiError("not_allowed_token_type" if token == other else "invalid_auth")

    def _next_ts(self) -> str:
        micros = _FIRST_TS_MICROS + 100 * next(self._ts_counter)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    @staticmethod
    def _resolve_channel(channel: str) -> str:
        """A user id stands for the bot's DM with that user, as in chat.postMessage."""
        return "D" + channel if channel[:1] in ("U", "W") else channel

    def _channel(self, params: dict[str, Any]) -> str:
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            raise _ApiError("channel_not_found")
        return self._resolve_channel(channel)

    @staticmethod
    def _blocks(value: Any, max_blocks: int = MAX_BLOCKS) -> list[dict[str, Any]]:
        if value in (None, ""):
            return []
        if not isinstance(value, list):
            raise _ApiError("invalid_blocks_format")
        errors = block_kit_errors(value, max_blocks)
        if errors:
            messages = [f"[ERROR] {e}" for e in errors]
            raise _ApiError(
                "invalid_blocks", errors=errors, response_metadata={"messages": messages}
            )
        return copy.deepcopy(value)

    def _content(self, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """Validated (text, blocks) of a message-posting call."""
        text = params.get("text")
        text = "" if text is None else str(text)
        blocks = self._blocks(params.get("blocks"))
        if not text and not blocks:
            raise _ApiError("no_text")
        if len(text) > MAX_MESSAGE_TEXT:
            raise _ApiError("msg_too_long")
        return text, blocks

    def _message_json(self, msg: PostedMessage) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "message",
            "text": msg.text,
            "user": self.bot_user_id,
            "bot_id": _BOT_ID,
            "app_id": _APP_ID,
            "team": self.team_id,
            "ts": msg.ts,
            "blocks": copy.deepcopy(msg.blocks),
        }
        if msg.thread_ts:
            data["thread_ts"] = msg.thread_ts
        return data

    # -- Web API methods -------------------------------------------------------------------

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": _WORKSPACE_URL,
            "team": "Standin",
            "user": "backupbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": _BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        text, blocks = self._content(params)
        thread_ts = str(params["thread_ts"]) if params.get("thread_ts") else None
        msg = PostedMessage(channel, self._next_ts(), text, blocks, thread_ts, [])
        self._messages.append(msg)
        self._by_key[(channel, msg.ts)] = msg
        return {"channel": channel, "ts": msg.ts, "message": self._message_json(msg)}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        msg = self._by_key.get((channel, str(params.get("ts", ""))))
        if msg is None:
            raise _ApiError("message_not_found")
        has_blocks = params.get("blocks") not in (None, "")
        if params.get("text") in (None, "") and not has_blocks:
            raise _ApiError("no_text")
        text = "" if params.get("text") is None else str(params["text"])
        if len(text) > MAX_MESSAGE_TEXT:
            raise _ApiError("msg_too_long")
        # As in Slack, omitting `blocks` keeps the message's blocks; `blocks=[]` removes them.
        blocks = self._blocks(params["blocks"]) if "blocks" in params else msg.blocks
        msg.history.append({"text": msg.text, "blocks": copy.deepcopy(msg.blocks)})
        msg.text, msg.blocks = text, blocks
        return {"channel": channel, "ts": msg.ts, "text": text, "message": self._message_json(msg)}

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        user = params.get("user")
        if not isinstance(user, str) or not user:
            raise _ApiError("user_not_found")
        text, blocks = self._content(params)
        thread_ts = str(params["thread_ts"]) if params.get("thread_ts") else None
        ts = self._next_ts()
        self._ephemerals.append(Ephemeral(channel, user, text, blocks, ts, thread_ts))
        return {"message_ts": ts}

    def _chat_get_permalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        msg = self._by_key.get((channel, str(params.get("message_ts", ""))))
        if msg is None:
            raise _ApiError("message_not_found")
        link = f"{_WORKSPACE_URL}archives/{channel}/p{msg.ts.replace('.', '')}"
        if msg.thread_ts and msg.thread_ts != msg.ts:
            link += f"?thread_ts={msg.thread_ts}&cid={channel}"
        return {"channel": channel, "permalink": link}

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("channel"):
            return {"channel": {"id": str(params["channel"])}}
        users = params.get("users") or []
        if isinstance(users, str):
            users = [u.strip() for u in users.split(",") if u.strip()]
        if not users:
            raise _ApiError("users_list_not_supplied")
        if len(users) == 1:
            return {"channel": {"id": "D" + users[0]}}
        digest = hashlib.sha1(",".join(sorted(users)).encode()).hexdigest()[:10].upper()
        return {"channel": {"id": "G" + digest}}

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = params.get("user_id")
        view = params.get("view")
        if not isinstance(user_id, str) or not user_id:
            raise _ApiError("invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "home":
            raise _ApiError("invalid_arguments")
        blocks = self._blocks(view.get("blocks", []), MAX_VIEW_BLOCKS)
        history = self._views.setdefault(user_id, [])
        if params.get("hash") and history and params["hash"] != history[-1]["hash"]:
            raise _ApiError("hash_conflict")
        view_id = history[-1]["id"] if history else "V" + uuid.uuid4().hex[:10].upper()
        published = {
            **copy.deepcopy(view),
            "id": view_id,
            "team_id": self.team_id,
            "app_id": _APP_ID,
            "bot_id": _BOT_ID,
            "blocks": blocks,
            "hash": f"{self._next_ts()}.{uuid.uuid4().hex[:8]}",
            "root_view_id": view_id,
            "previous_view_id": None,
            "state": {"values": {}},
        }
        history.append(published)
        return {"view": copy.deepcopy(published)}

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        users = self._usergroups.get(str(params.get("usergroup", "")))
        if users is None:
            raise _ApiError("no_such_subteam")
        return {"users": list(users)}

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        url = f"{self.socket_root_url}{_SOCKET_PATH}?ticket={ticket}&app_id={_APP_ID}"
        return {"url": url}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = params.get("user")
        if not isinstance(user_id, str) or not user_id:
            raise _ApiError("user_not_found")
        is_bot = user_id == self.bot_user_id
        name = "backupbot" if is_bot else f"user-{user_id.lower()}"
        real_name = "backupbot" if is_bot else f"Standin User {user_id}"
        return {
            "user": {
                "id": user_id,
                "team_id": self.team_id,
                "name": name,
                "real_name": real_name,
                "deleted": False,
                "is_bot": is_bot,
                "is_admin": False,
                "is_app_user": False,
                "is_restricted": user_id in self._guests,
                "is_ultra_restricted": self._guests.get(user_id, False),
                "tz": "UTC",
                "tz_label": "Coordinated Universal Time",
                "tz_offset": 0,
                "updated": 1_700_000_000,
                "profile": {
                    "real_name": real_name,
                    "display_name": name,
                    "email": f"{name}@standin.example.com",
                    "team": self.team_id,
                },
            }
        }
