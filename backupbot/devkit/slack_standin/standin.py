"""`SlackStandin`: the stand-in's state, its two servers' lifecycle, and what tests
inspect and set up; its parts are the Web API, Socket Mode and fault injection."""

from __future__ import annotations

import copy
import itertools
import logging
import threading
import time
import uuid
from types import TracebackType
from typing import Any

from websockets.sync.server import serve

from backupbot.devkit.slack_standin.http import StandinHttpServer
from backupbot.devkit.slack_standin.records import (
    RESPONSE_URL_MAX_USES,
    Ephemeral,
    PostedMessage,
    ResponseUrlPost,
)
from backupbot.devkit.slack_standin.socket_mode import SocketMode
from backupbot.devkit.slack_standin.web_api import WebApi

# The WebSocket server's logger (as before the stand-in became a package).
_SOCKET_LOGGER = "backupbot.devkit.slack_standin.socket"


class SlackStandin(WebApi, SocketMode):
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
        self._server: StandinHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._ws_server = None
        self._ws_thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._ts_counter = itertools.count(1)
        self._response_url_uses = {}
        self._methods = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.open": self._conversations_open,
            "views.publish": self._views_publish,
            "views.open": self._views_open,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
        }
        # Methods that take the app-level (xapp-) token instead of the bot token.
        self._app_methods = {
            "apps.connections.open": self._apps_connections_open,
        }
        # Socket Mode state is live, not a record: reset() leaves it alone.
        self._tickets = set()
        self._links = []  # open connections, oldest first
        self._link_numbers = itertools.count(1)
        self._envelopes = {}
        self._clear()

    def _clear(self) -> None:
        self._messages = []
        self._by_key = {}
        self._ephemerals = []
        self._response_posts = []
        self._views = {}
        self._modals = []
        self._triggers = {}
        self._usergroups = {}
        self._guests = {}
        self._faults = {}
        self._held = set()
        self._calls = []
        self._files = {}
        self._sockets_opened = 0
        self._response_url_uses = dict.fromkeys(self._response_url_uses, 0)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SlackStandin:
        """Bind the ports and serve in daemon threads; returns self. A no-op if running."""
        if self._server is None:
            self._server = StandinHttpServer(self._address, self)
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
                logger=logging.getLogger(_SOCKET_LOGGER),
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

    def _root_url(self) -> str:
        return self.root_url

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

    def opened_modals(self) -> list[dict[str, Any]]:
        """Every modal opened with views.open, oldest first, as Slack would hold it."""
        with self._lock:
            return copy.deepcopy(self._modals)

    def issue_trigger(self, trigger_id: str) -> None:
        """Remember a trigger_id sent with an interaction: views.open takes it for 3 s."""
        with self._lock:
            self._triggers[trigger_id] = time.monotonic()

    def set_guest(self, user_id: str, *, single_channel: bool = False) -> None:
        """Make `user_id` a multi-channel guest (`is_restricted`) or a single-channel one
        (`is_ultra_restricted`), as users.info reports them."""
        with self._lock:
            self._guests[user_id] = single_channel

    def set_usergroup(self, usergroup_id: str, user_ids: list[str]) -> None:
        """Define (or replace) a user group's members for usergroups.users.list."""
        with self._lock:
            self._usergroups[usergroup_id] = list(user_ids)

    def calls(self, method: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """Every request received as (method, params), rejected ones included.

        Posts to response_urls appear as ("response_url", body).
        """
        with self._lock:
            return [copy.deepcopy(c) for c in self._calls if method in (None, c[0])]

    def reset(self) -> None:
        """Forget everything recorded and configured (user groups, rate limits too).

        Issued response_urls stay valid with their use counts cleared; timestamps keep rising.
        Socket Mode connections, unused tickets and pending envelopes are live state and stay;
        `socket_connections_opened()` counts from zero again.
        """
        with self._changed:
            self._clear()
            self._changed.notify_all()
