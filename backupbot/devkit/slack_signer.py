"""Play Slack towards a bot on a user's behalf: slash commands, clicks and events (the Home
tab opened), as Slack sends them.

One payload builder (`SlackUserActions`) shapes slash-command fields and `block_actions`
payloads like Slack's; given a `SlackStandin`, it hands out response_urls the stand-in records
and fills in the clicked message from what the stand-in holds. Two transports deliver them:

* `SignedSlackClient` posts them to the bot's HTTP endpoint, form-encoded and signed with the
  app's signing secret (`X-Slack-Signature`, `X-Slack-Request-Timestamp`), with the standard
  library.
* `SocketModeSlackClient` pushes them as Socket Mode envelopes (`slash_commands`,
  `interactive`, `events_api`) through the stand-in to the bot's WebSocket connection and
  waits for the ack.

Both answer with a `SlackResponse`, so callers read `.status` and `.json()` the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from backupbot.devkit.slack_standin import SlackStandin

_USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
_FORM_TYPE = "application/x-www-form-urlencoded"
_APP_ID = "A0STANDIN"
_VERIFICATION_TOKEN = "standin-verification-token"
_TEAM_DOMAIN = "standin"
# Nothing listens on the discard port, so a bot that posts here fails fast and offline.
_DUMMY_RESPONSE_URL = "http://127.0.0.1:9/response/none"


def slack_signature(signing_secret: str, timestamp: int | str, body: bytes) -> str:
    """The `X-Slack-Signature` value Slack sends for `body` at `timestamp`."""
    base = b"v0:" + str(timestamp).encode("ascii") + b":" + body
    digest = hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return f"v0={digest}"


@dataclass
class SlackResponse:
    """What the bot answered; `elapsed` is seconds from send to fully read response."""

    status: int
    body: str
    headers: dict[str, str]
    elapsed: float

    def json(self) -> dict[str, Any]:
        """The body parsed as JSON; `{}` for an empty body (a bare acknowledgement)."""
        return json.loads(self.body) if self.body.strip() else {}


class SlackUserActions(ABC):
    """What a Slack user can do to the bot; subclasses say how the payloads travel."""

    def __init__(self, standin: SlackStandin | None = None, team_id: str = "T0STANDIN") -> None:
        self.standin = standin
        self.team_id = team_id
        self.channel_id = "C0STANDIN"  # where slash commands are typed unless told

    @abstractmethod
    def _deliver_command(self, fields: dict[str, str]) -> SlackResponse:
        """Deliver a slash command's fields (as Slack's form post has them)."""

    @abstractmethod
    def _deliver_interaction(self, payload: dict[str, Any]) -> SlackResponse:
        """Deliver an interaction payload (`block_actions`, ...)."""

    @abstractmethod
    def _deliver_event(self, payload: dict[str, Any]) -> SlackResponse:
        """Deliver an Events API `event_callback` payload."""

    def app_home_opened(self, user_id: str, tab: str = "home") -> SlackResponse:
        """`user_id` opens the app's Home tab (or `tab="messages"`): an `app_home_opened`
        event as the Events API sends it, with the view last published for them, if any."""
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user_id,
            "channel": "D" + user_id,
            "tab": tab,
            "event_ts": f"{time.time():.6f}",
        }
        if self.standin is not None and (views := self.standin.published_views(user_id)):
            event["view"] = views[-1]
        bot_user = self.standin.bot_user_id if self.standin is not None else "U0BOT"
        payload: dict[str, Any] = {
            "token": _VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "api_app_id": _APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": "Ev" + uuid.uuid4().hex[:10].upper(),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": bot_user,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
        return self._deliver_event(payload)

    def home_action(
        self, user_id: str, action_id: str, value: str, view: dict[str, Any], block_id: str = "b"
    ) -> SlackResponse:
        """Click the button `action_id` (carrying `value`) in the Home tab `view` (from
        `published_views()`): a `block_actions` payload whose container is the view, with
        no channel and no response_url, as Slack sends it."""
        name = _user_name(user_id)
        action = {"action_id": action_id, "block_id": block_id, "value": value, "type": "button"}
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user_id, "username": name, "name": name, "team_id": self.team_id},
            "api_app_id": _APP_ID,
            "token": _VERIFICATION_TOKEN,
            "container": {"type": "view", "view_id": view.get("id")},
            "trigger_id": self._trigger(),
            "team": {"id": self.team_id, "domain": _TEAM_DOMAIN},
            "enterprise": None,
            "is_enterprise_install": False,
            "view": view,
            "state": {"values": {}},
            "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
        }
        return self._deliver_interaction(payload)

    def slash_command(
        self,
        user_id: str,
        text: str,
        command: str = "/backup",
        channel_id: str | None = None,
        user_name: str | None = None,
    ) -> SlackResponse:
        """Invoke `command text` as `user_id` in `channel_id` (default `self.channel_id`)."""
        channel_id = channel_id or self.channel_id
        fields = {
            "token": _VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "team_domain": _TEAM_DOMAIN,
            "channel_id": channel_id,
            "channel_name": _channel_name(channel_id),
            "user_id": user_id,
            "user_name": user_name or _user_name(user_id),
            "command": command,
            "text": text,
            "api_app_id": _APP_ID,
            "is_enterprise_install": "false",
            "response_url": self._response_url(),
            "trigger_id": self._trigger(),
        }
        return self._deliver_command(fields)

    def _trigger(self) -> str:
        """A new trigger_id, made known to the stand-in (views.open takes it for 3 s)."""
        trigger = _trigger_id()
        if self.standin is not None:
            self.standin.issue_trigger(trigger)
        return trigger

    def submit_view(
        self, user_id: str, view: dict[str, Any], values: dict[str, dict[str, str]]
    ) -> SlackResponse:
        """Submit the opened modal `view` (from `opened_modals()`) with plain-text input
        `values` ({block_id: {action_id: text}}), as a `view_submission` payload. The
        bot's answer (`response_action`, errors) is the response's JSON."""
        name = _user_name(user_id)
        state = {
            block: {
                action: {"type": "plain_text_input", "value": text}
                for action, text in inputs.items()
            }
            for block, inputs in values.items()
        }
        payload = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": _TEAM_DOMAIN},
            "user": {"id": user_id, "username": name, "name": name, "team_id": self.team_id},
            "api_app_id": _APP_ID,
            "token": _VERIFICATION_TOKEN,
            "trigger_id": self._trigger(),
            "view": {**view, "state": {"values": state}},
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        return self._deliver_interaction(payload)

    def block_action(
        self,
        user_id: str,
        action_id: str,
        value: str,
        channel_id: str,
        message_ts: str,
        block_id: str = "b",
        response_url: str | None = None,
    ) -> SlackResponse:
        """Click the button `action_id` (carrying `value`) on message `message_ts`."""
        action = {"action_id": action_id, "block_id": block_id, "value": value, "type": "button"}
        message = self._clicked_message(channel_id, message_ts)
        return self._send_action(user_id, channel_id, message, action, {}, response_url)

    def checkboxes_action(
        self,
        user_id: str,
        action_id: str,
        selected: list[str],
        channel_id: str,
        message_ts: str,
        block_id: str,
        response_url: str | None = None,
    ) -> SlackResponse:
        """Tick checkboxes on message `message_ts` so that exactly the options whose values
        are in `selected` are ticked, as Slack sends it (`selected_options`, full objects)."""
        message = self._clicked_message(channel_id, message_ts)
        options: list[dict[str, Any]] = []
        for block in message.get("blocks") or []:
            if block.get("block_id") == block_id:
                for element in block.get("elements") or [block.get("accessory") or {}]:
                    if element.get("action_id") == action_id:
                        options = element.get("options") or []
        chosen = [o for o in options if o.get("value") in selected] or [
            {"text": {"type": "plain_text", "text": v}, "value": v} for v in selected
        ]
        action = {
            "type": "checkboxes",
            "action_id": action_id,
            "block_id": block_id,
            "selected_options": chosen,
        }
        state = {block_id: {action_id: action}}
        return self._send_action(user_id, channel_id, message, action, state, response_url)

    def _send_action(
        self,
        user_id: str,
        channel_id: str,
        message: dict[str, Any],
        action: dict[str, Any],
        state: dict[str, Any],
        response_url: str | None,
    ) -> SlackResponse:
        """A `block_actions` payload as Slack sends it for a click on `message`."""
        name = _user_name(user_id)
        payload = {
            "type": "block_actions",
            "user": {"id": user_id, "username": name, "name": name, "team_id": self.team_id},
            "api_app_id": _APP_ID,
            "token": _VERIFICATION_TOKEN,
            "container": {
                "type": "message",
                "message_ts": message.get("ts"),
                "channel_id": channel_id,
                "is_ephemeral": False,
            },
            "trigger_id": self._trigger(),
            "team": {"id": self.team_id, "domain": _TEAM_DOMAIN},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": _channel_name(channel_id)},
            "message": message,
            "state": {"values": state},
            "response_url": response_url or self._response_url(),
            "actions": [{**action, "action_ts": f"{time.time():.6f}"}],
        }
        return self._deliver_interaction(payload)

    def _response_url(self) -> str:
        return self.standin.new_response_url() if self.standin else _DUMMY_RESPONSE_URL

    def _clicked_message(self, channel_id: str, message_ts: str) -> dict[str, Any]:
        """The message as the stand-in holds it, or a bare reference without one."""
        message: dict[str, Any] = {"type": "message", "ts": message_ts}
        if self.standin is not None:
            try:
                posted = self.standin.message(channel_id, message_ts)
            except KeyError:
                return message
            message.update(text=posted.text, blocks=posted.blocks, user=self.standin.bot_user_id)
            if posted.thread_ts:
                message["thread_ts"] = posted.thread_ts
        return message


class SignedSlackClient(SlackUserActions):
    """Plays Slack towards the bot at `events_url` over HTTP, signing with `signing_secret`."""

    def __init__(
        self,
        events_url: str,
        signing_secret: str,
        standin: SlackStandin | None = None,
        team_id: str = "T0STANDIN",
        *,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(standin, team_id)
        self.events_url = events_url
        self.signing_secret = signing_secret
        self.timeout = timeout
        # Never route through an environment proxy: the bot under test is local.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _deliver_command(self, fields: dict[str, str]) -> SlackResponse:
        return self.send_raw(urlencode(fields).encode("utf-8"), _FORM_TYPE)

    def _deliver_interaction(self, payload: dict[str, Any]) -> SlackResponse:
        body = urlencode({"payload": json.dumps(payload)}).encode("utf-8")
        return self.send_raw(body, _FORM_TYPE)

    def _deliver_event(self, payload: dict[str, Any]) -> SlackResponse:
        return self.send_raw(json.dumps(payload).encode("utf-8"), "application/json")

    def send_raw(
        self,
        body: bytes,
        content_type: str,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> SlackResponse:
        """POST `body` signed for `timestamp` (default now); `signature` overrides the real one."""
        ts = int(time.time()) if timestamp is None else timestamp
        if signature is None:
            signature = slack_signature(self.signing_secret, ts, body)
        headers = {
            "Content-Type": content_type,
            "User-Agent": _USER_AGENT,
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature,
        }
        request = urllib.request.Request(self.events_url, data=body, headers=headers, method="POST")
        started = time.monotonic()
        try:
            with self._opener.open(request, timeout=self.timeout) as resp:
                status, raw, got = resp.status, resp.read(), dict(resp.headers.items())
        except urllib.error.HTTPError as err:
            status, raw, got = err.code, err.read(), dict(err.headers.items())
            err.close()
        elapsed = time.monotonic() - started
        return SlackResponse(status, raw.decode("utf-8", errors="replace"), got, elapsed)


class SocketModeSlackClient(SlackUserActions):
    """Plays Slack towards a bot connected to `standin` in Socket Mode.

    Each action becomes an envelope (`slash_commands` with the command's fields as a JSON
    object, `interactive` with the payload itself) that `standin.send_envelope` delivers and
    waits on; the response's body is the ack's payload as JSON text ("" for a bare ack).
    """

    def __init__(
        self, standin: SlackStandin, team_id: str = "T0STANDIN", *, timeout: float = 10.0
    ) -> None:
        super().__init__(standin, team_id)
        self.timeout = timeout

    def _deliver_command(self, fields: dict[str, str]) -> SlackResponse:
        return self._deliver("slash_commands", dict(fields))

    def _deliver_interaction(self, payload: dict[str, Any]) -> SlackResponse:
        return self._deliver("interactive", payload)

    def _deliver_event(self, payload: dict[str, Any]) -> SlackResponse:
        return self._deliver("events_api", payload)

    def _deliver(self, envelope_type: str, payload: dict[str, Any]) -> SlackResponse:
        assert self.standin is not None  # required by __init__
        started = time.monotonic()
        ack = self.standin.send_envelope(envelope_type, payload, timeout=self.timeout)
        elapsed = time.monotonic() - started
        return SlackResponse(200, json.dumps(ack) if ack else "", {}, elapsed)


def _user_name(user_id: str) -> str:
    return f"user-{user_id.lower()}"


def _channel_name(channel_id: str) -> str:
    return "directmessage" if channel_id.startswith("D") else channel_id.lower()


def _trigger_id() -> str:
    return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"
