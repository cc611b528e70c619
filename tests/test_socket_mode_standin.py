"""Socket Mode against the Slack stand-in: the real slack_sdk / slack_bolt clients over a real
WebSocket, and envelopes delivered to them as Slack delivers them."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websockets.sync.client
from slack_bolt import Ack, App, BoltRequest
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from websockets.exceptions import InvalidStatus

from backupbot.devkit.slack_signer import SocketModeSlackClient
from backupbot.devkit.slack_standin import SOCKET_RETRY_REASON, SlackStandin

BOT_TOKEN = "xoxb-standin"
APP_TOKEN = "xapp-standin"
# The builtin client only notices a dead connection on its monitor tick, every ping_interval
# seconds (production default: 10 for SocketModeHandler); keep it short so tests reconnect
# fast, but long enough that it never declares a healthy link stale (> 4 intervals).
PING_INTERVAL = 0.5
WAIT = 10.0

Listener = Callable[[SocketModeClient, SocketModeRequest], None]


@pytest.fixture
def standin() -> Iterator[SlackStandin]:
    with SlackStandin(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as running:
        yield running


def close_client(client: SocketModeClient, standin: SlackStandin) -> None:
    """Close without the builtin client's wait for its reader's 3 s receive timeout: stop it
    reconnecting, cut its link (the reset wakes the reader at once), then close."""
    client.auto_reconnect_enabled = False
    standin.drop_socket_connections()
    client.close()


@pytest.fixture
def sdk_client(standin: SlackStandin) -> Iterator[Callable[..., SocketModeClient]]:
    """Connect a real builtin SocketModeClient whose request listener is `listener`."""
    clients: list[SocketModeClient] = []

    def connect(
        listener: Listener | None = None, on_message: Callable[[str], None] | None = None
    ) -> SocketModeClient:
        client = SocketModeClient(
            app_token=APP_TOKEN,
            web_client=WebClient(base_url=standin.base_url),
            ping_interval=PING_INTERVAL,
            on_message_listeners=[on_message] if on_message else None,
        )
        clients.append(client)
        if listener is not None:
            client.socket_mode_request_listeners.append(listener)
        client.connect()
        assert standin.wait_for_socket(WAIT)
        return client

    yield connect
    for client in clients:
        close_client(client, standin)


class Bot:
    """A real bolt App in Socket Mode: `/backup` acks with text; `approve` clicks recorded."""

    def __init__(self, standin: SlackStandin) -> None:
        self.app = App(client=WebClient(token=BOT_TOKEN, base_url=standin.base_url))
        self.commands: list[dict[str, Any]] = []
        self.clicks: list[dict[str, Any]] = []
        self._lock = threading.Lock()

        @self.app.command("/backup")
        def backup(ack: Ack, command: dict[str, Any], request: BoltRequest) -> None:
            with self._lock:
                retry = request.headers.get("x-slack-retry-num", ["?"])[0]
                self.commands.append({**command, "retry_num": retry})
            ack(text=f"Queued: {command['text']}")

        @self.app.action("approve")
        def approve(ack: Ack, body: dict[str, Any]) -> None:
            with self._lock:
                self.clicks.append(body)
            ack()

        self.handler = SocketModeHandler(self.app, APP_TOKEN, ping_interval=PING_INTERVAL)

    def runs_for(self, text: str) -> int:
        with self._lock:
            return sum(1 for c in self.commands if c["text"] == text)


@pytest.fixture
def bot(standin: SlackStandin) -> Iterator[Bot]:
    running = Bot(standin)
    running.handler.connect()
    assert standin.wait_for_socket(WAIT)
    yield running
    close_client(running.handler.client, standin)


def opens(standin: SlackStandin) -> int:
    return len(standin.calls("apps.connections.open"))


# -- connecting --------------------------------------------------------------------------------


def test_client_gets_hello_and_connects(
    standin: SlackStandin, sdk_client: Callable[..., SocketModeClient]
) -> None:
    hellos: list[dict[str, Any]] = []
    greeted = threading.Event()

    def on_message(raw: str) -> None:
        message = json.loads(raw)
        if message.get("type") == "hello":
            hellos.append(message)
            greeted.set()

    client = sdk_client(on_message=on_message)
    assert greeted.wait(WAIT)
    [hello] = hellos
    assert hello["num_connections"] == 1
    assert hello["connection_info"] == {"app_id": "A0STANDIN"}
    assert client.is_connected()
    assert standin.socket_connected() and standin.socket_connections_opened() == 1
    assert opens(standin) == 1
    assert client.wss_uri is not None and client.wss_uri.startswith("ws://127.0.0.1:")


def test_ticket_works_once(standin: SlackStandin) -> None:
    url = WebClient(base_url=standin.base_url).apps_connections_open(app_token=APP_TOKEN)["url"]
    assert url.startswith(f"{standin.socket_root_url}/link/?ticket=")
    assert url.endswith("&app_id=A0STANDIN")
    with websockets.sync.client.connect(url, open_timeout=WAIT) as ws:
        assert json.loads(ws.recv(timeout=WAIT))["type"] == "hello"
    with pytest.raises(InvalidStatus) as reused:
        websockets.sync.client.connect(url, open_timeout=WAIT)
    assert reused.value.response.status_code == 401
    made_up = url.replace("ticket=", "ticket=0")
    with pytest.raises(InvalidStatus) as invented:
        websockets.sync.client.connect(made_up, open_timeout=WAIT)
    assert invented.value.response.status_code == 401
    assert standin.socket_connections_opened() == 1


def test_wrong_token_types_are_refused(standin: SlackStandin) -> None:
    web = WebClient(base_url=standin.base_url)
    with pytest.raises(SlackApiError) as bot_token:
        web.apps_connections_open(app_token=BOT_TOKEN)
    assert bot_token.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as unknown:
        web.apps_connections_open(app_token="xapp-wrong")
    assert unknown.value.response["error"] == "invalid_auth"
    # ...and the app-level token is no bot token either.
    with pytest.raises(SlackApiError) as app_token:
        WebClient(token=APP_TOKEN, base_url=standin.base_url).chat_postMessage(
            channel="C1", text="hi"
        )
    assert app_token.value.response["error"] == "not_allowed_token_type"
    client = SocketModeClient(app_token=BOT_TOKEN, web_client=web, auto_reconnect_enabled=False)
    try:
        with pytest.raises(SlackApiError) as connecting:
            client.connect()
        assert connecting.value.response["error"] == "not_allowed_token_type"
    finally:
        client.close()
    assert standin.socket_connections_opened() == 0 and standin.messages() == []


# -- envelopes ---------------------------------------------------------------------------------


def test_envelope_shape_ack_and_timeout(standin: SlackStandin) -> None:
    url = WebClient(base_url=standin.base_url).apps_connections_open(app_token=APP_TOKEN)["url"]
    result: dict[str, Any] = {}
    with websockets.sync.client.connect(url, open_timeout=WAIT) as ws:
        ws.recv(timeout=WAIT)  # hello
        sender = threading.Thread(
            target=lambda: result.update(ack=standin.send_envelope("events_api", {"x": 1}))
        )
        sender.start()
        envelope = json.loads(ws.recv(timeout=WAIT))
        assert envelope == {
            "envelope_id": envelope["envelope_id"],
            "type": "events_api",
            "payload": {"x": 1},
            "accepts_response_payload": True,
            "retry_attempt": 0,
            "retry_reason": "",
        }
        ws.send(json.dumps({"envelope_id": "not-this-one"}))
        ws.send(json.dumps({"envelope_id": envelope["envelope_id"]}))
        sender.join(WAIT)
        assert result == {"ack": {}}

        with pytest.raises(TimeoutError, match=r"interactive envelope .* not acknowledged"):
            standin.send_envelope("interactive", {}, timeout=0.3)
    with pytest.raises(TimeoutError, match=r"slash_commands envelope .* no Socket Mode client"):
        standin.send_envelope("slash_commands", {}, timeout=0.3)


def test_slash_command_reaches_bolt_and_ack_text_comes_back(
    standin: SlackStandin, bot: Bot
) -> None:
    response = SocketModeSlackClient(standin).slash_command("U1", "backup orders", user_name="ann")
    assert response.status == 200
    assert response.json() == {"text": "Queued: backup orders"}
    [command] = bot.commands
    assert (command["user_id"], command["user_name"]) == ("U1", "ann")
    assert (command["command"], command["text"]) == ("/backup", "backup orders")
    assert command["channel_id"] == "C0STANDIN" and command["team_id"] == "T0STANDIN"
    assert command["response_url"].startswith(f"{standin.root_url}/response/")
    assert command["retry_num"] == "0"


def test_block_action_reaches_bolt_action_listener(standin: SlackStandin, bot: Bot) -> None:
    button = {"type": "button", "action_id": "approve", "value": "restore-7"}
    button["text"] = {"type": "plain_text", "text": "Approve"}
    posted = WebClient(token=BOT_TOKEN, base_url=standin.base_url).chat_postMessage(
        channel="C1", text="Restore 7?", blocks=[{"type": "actions", "elements": [button]}]
    )
    response = SocketModeSlackClient(standin).block_action(
        "U2", "approve", "restore-7", "C1", posted["ts"]
    )
    assert (response.status, response.body, response.json()) == (200, "", {})
    [click] = bot.clicks
    assert click["type"] == "block_actions" and click["user"]["id"] == "U2"
    assert click["actions"][0]["value"] == "restore-7"
    assert click["message"]["ts"] == posted["ts"] and click["message"]["text"] == "Restore 7?"


# -- reconnecting ------------------------------------------------------------------------------


def test_refresh_requested_makes_the_client_reconnect(standin: SlackStandin, bot: Bot) -> None:
    assert standin.request_refresh() == 1
    assert standin.wait_for(lambda: standin.socket_connections_opened() == 2, WAIT)
    assert opens(standin) == 2
    response = SocketModeSlackClient(standin).slash_command("U1", "after refresh")
    assert response.json() == {"text": "Queued: after refresh"}
    assert bot.runs_for("after refresh") == 1


def test_command_sent_during_a_network_cut_arrives_once_after_reconnect(
    standin: SlackStandin, bot: Bot
) -> None:
    assert standin.drop_socket_connections() == 1
    assert not standin.socket_connected()
    # Sent while no connection is open: held until the client reconnects by itself.
    response = SocketModeSlackClient(standin).slash_command("U1", "during cut")
    assert response.json() == {"text": "Queued: during cut"}
    assert standin.socket_connections_opened() == 2 and opens(standin) == 2
    # A later command is a fence: anything still in flight for the first one would be done.
    SocketModeSlackClient(standin).slash_command("U1", "fence")
    assert bot.runs_for("during cut") == 1
    assert [c["retry_num"] for c in bot.commands if c["text"] == "during cut"] == ["0"]


def test_envelope_unacked_when_link_drops_is_redelivered(
    standin: SlackStandin, sdk_client: Callable[..., SocketModeClient]
) -> None:
    seen: list[tuple[str, int | None, str | None]] = []
    first_delivery = threading.Event()

    def listener(client: SocketModeClient, req: SocketModeRequest) -> None:
        seen.append((req.envelope_id, req.retry_attempt, req.retry_reason))
        if req.retry_attempt == 0:
            first_delivery.set()  # and never ack: the link is cut before it would
            return
        response = SocketModeResponse(req.envelope_id, payload={"text": "second time"})
        client.send_socket_mode_response(response)

    sdk_client(listener)
    result: dict[str, Any] = {}
    sender = threading.Thread(
        target=lambda: result.update(ack=standin.send_envelope("slash_commands", {"text": "x"}))
    )
    sender.start()
    assert first_delivery.wait(WAIT)
    standin.drop_socket_connections()
    sender.join(WAIT)
    assert result == {"ack": {"text": "second time"}}
    [(first_id, first_attempt, first_reason), second] = seen
    assert (first_attempt, first_reason) == (0, "")
    assert second == (first_id, 1, SOCKET_RETRY_REASON)
    assert standin.socket_connections_opened() == 2
