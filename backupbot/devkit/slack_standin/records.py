"""What the stand-in records (messages, ephemerals, response_url posts), the faults it
injects, the workspace's fixed ids, and how a Web API request's parameters are read."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

RESPONSE_URL_MAX_USES = 5
WORKSPACE_URL = "https://standin.slack.com/"
BOT_ID = "B0STANDIN"
APP_ID = "A0STANDIN"


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
class Fault:
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


class ApiError(Exception):
    """A Web API failure: `{"ok": false, "error": error, **extra}`."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def parse_params(query: str, body: bytes, content_type: str) -> dict[str, Any]:
    """Merge query-string and body parameters; JSON-string `blocks`/`attachments`/`view` decoded."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    mime = content_type.split(";")[0].strip().lower()
    if body:
        if mime == "application/json":
            try:
                data = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as err:
                raise ApiError("invalid_json") from err
            if not isinstance(data, dict):
                raise ApiError("invalid_json")
            params.update(data)
        elif mime in ("application/x-www-form-urlencoded", ""):
            try:
                params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError as err:
                raise ApiError("invalid_form_data") from err
        else:
            raise ApiError("invalid_form_data")
    for key in ("blocks", "attachments", "view"):
        value = params.get(key)
        if isinstance(value, str) and value:
            with contextlib.suppress(ValueError):  # else left a string; the method rejects it
                params[key] = json.loads(value)
    return params
