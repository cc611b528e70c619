"""The state the stand-in's parts share, declared once with its types (`SlackStandin`
sets it up), and the helpers every part uses."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from backupbot.devkit.slack_standin.records import Ephemeral, PostedMessage, ResponseUrlPost

_FIRST_TS_MICROS = 1_700_000_000_000_000

WebApiMethod = Callable[[dict[str, Any]], dict[str, Any]]


class StandinState:
    """One workspace's tokens and ids, the lock every part takes, and what is recorded."""

    bot_token: str
    app_token: str
    team_id: str
    bot_user_id: str
    response_url_max_uses: int
    _lock: threading.RLock
    _changed: threading.Condition  # on `_lock`: notified after every change
    _ts_counter: itertools.count[int]
    _methods: dict[str, WebApiMethod]  # bot-token Web API methods
    _app_methods: dict[str, WebApiMethod]  # app-level-token Web API methods
    _messages: list[PostedMessage]
    _by_key: dict[tuple[str, str], PostedMessage]
    _ephemerals: list[Ephemeral]
    _response_posts: list[ResponseUrlPost]
    _response_url_uses: dict[str, int]
    _views: dict[str, list[dict[str, Any]]]
    _modals: list[dict[str, Any]]  # views.open, oldest first
    _triggers: dict[str, float]  # trigger_id -> when it was issued (time.monotonic)
    _usergroups: dict[str, list[str]]
    _guests: dict[str, bool]  # user id -> single-channel guest
    _calls: list[tuple[str, dict[str, Any]]]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Block until `predicate()` is true (re-checked after each request); False on timeout."""
        with self._changed:
            return bool(self._changed.wait_for(predicate, timeout))

    def _next_ts(self) -> str:
        micros = _FIRST_TS_MICROS + 100 * next(self._ts_counter)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    @staticmethod
    def _resolve_channel(channel: str) -> str:
        """A user id stands for the bot's DM with that user, as in chat.postMessage."""
        return "D" + channel if channel[:1] in ("U", "W") else channel
