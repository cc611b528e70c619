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

The parts: `standin.py` (`SlackStandin`: state, lifecycle, inspection), `web_api.py` and
`http.py` (the Web API and its server), `socket_mode.py`, `faults.py`, `blocks.py` (the
Block Kit limits), `records.py` (what it records).
"""

from backupbot.devkit.slack_standin.blocks import (
    MAX_ACTION_ID,
    MAX_BLOCK_ID,
    MAX_BLOCKS,
    MAX_BUTTON_TEXT,
    MAX_BUTTON_VALUE,
    MAX_FIELD_TEXT,
    MAX_HEADER_TEXT,
    MAX_MESSAGE_TEXT,
    MAX_SECTION_FIELDS,
    MAX_SECTION_TEXT,
    MAX_VIEW_BLOCKS,
    block_kit_errors,
)
from backupbot.devkit.slack_standin.records import (
    RESPONSE_URL_MAX_USES,
    Ephemeral,
    PostedMessage,
    ResponseUrlPost,
)
from backupbot.devkit.slack_standin.socket_mode import SOCKET_RETRY_REASON
from backupbot.devkit.slack_standin.standin import SlackStandin

__all__ = [
    "MAX_ACTION_ID",
    "MAX_BLOCKS",
    "MAX_BLOCK_ID",
    "MAX_BUTTON_TEXT",
    "MAX_BUTTON_VALUE",
    "MAX_FIELD_TEXT",
    "MAX_HEADER_TEXT",
    "MAX_MESSAGE_TEXT",
    "MAX_SECTION_FIELDS",
    "MAX_SECTION_TEXT",
    "MAX_VIEW_BLOCKS",
    "RESPONSE_URL_MAX_USES",
    "SOCKET_RETRY_REASON",
    "Ephemeral",
    "PostedMessage",
    "ResponseUrlPost",
    "SlackStandin",
    "block_kit_errors",
]
