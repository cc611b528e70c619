"""The stand-in's Web API: one request answered (faults, auth, the method) and the
methods backupbot uses, plus posts to response_urls, with Slack's checks and errors."""

from __future__ import annotations

import copy
import hashlib
import json
import time
import uuid
from typing import Any

from backupbot.devkit.slack_standin.blocks import (
    MAX_BLOCKS,
    MAX_MESSAGE_TEXT,
    MAX_VIEW_BLOCKS,
    block_kit_errors,
)
from backupbot.devkit.slack_standin.faults import FaultInjection
from backupbot.devkit.slack_standin.files import FileUploads
from backupbot.devkit.slack_standin.records import (
    APP_ID,
    BOT_ID,
    WORKSPACE_URL,
    ApiError,
    Ephemeral,
    PostedMessage,
    ResponseUrlPost,
    parse_params,
)

TRIGGER_SECONDS = 3.0  # how long Slack takes a trigger_id
MAX_MODAL_TITLE = 24  # characters in a modal's title, submit and close labels


class WebApi(FaultInjection, FileUploads):
    """The Web API part of `SlackStandin` (file uploads: `FileUploads`)."""

    def _handle_api(
        self, method: str, query: str, body: bytes, content_type: str, authorization: str
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Answer one Web API request: (HTTP status, extra headers, JSON payload)."""
        with self._changed:
            try:
                params: dict[str, Any] = {}
                try:
                    params = parse_params(query, body, content_type)
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
                        raise ApiError("unknown_method")
                    self._check_auth(token, wanted=self.app_token, other=self.bot_token)
                return 200, {}, {"ok": True, **handler(params)}
            except ApiError as err:
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
        raise ApiError("not_allowed_token_type" if token == other else "invalid_auth")

    def _channel(self, params: dict[str, Any]) -> str:
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            raise ApiError("channel_not_found")
        return self._resolve_channel(channel)

    @staticmethod
    def _blocks(value: Any, max_blocks: int = MAX_BLOCKS) -> list[dict[str, Any]]:
        if value in (None, ""):
            return []
        if not isinstance(value, list):
            raise ApiError("invalid_blocks_format")
        errors = block_kit_errors(value, max_blocks)
        if errors:
            messages = [f"[ERROR] {e}" for e in errors]
            raise ApiError(
                "invalid_blocks", errors=errors, response_metadata={"messages": messages}
            )
        return copy.deepcopy(value)

    def _content(self, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """Validated (text, blocks) of a message-posting call."""
        text = params.get("text")
        text = "" if text is None else str(text)
        blocks = self._blocks(params.get("blocks"))
        if not text and not blocks:
            raise ApiError("no_text")
        if len(text) > MAX_MESSAGE_TEXT:
            raise ApiError("msg_too_long")
        return text, blocks

    def _message_json(self, msg: PostedMessage) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "message",
            "text": msg.text,
            "user": self.bot_user_id,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
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
            "url": WORKSPACE_URL,
            "team": "Standin",
            "user": "backupbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": BOT_ID,
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
            raise ApiError("message_not_found")
        has_blocks = params.get("blocks") not in (None, "")
        if params.get("text") in (None, "") and not has_blocks:
            raise ApiError("no_text")
        text = "" if params.get("text") is None else str(params["text"])
        if len(text) > MAX_MESSAGE_TEXT:
            raise ApiError("msg_too_long")
        # As in Slack, omitting `blocks` keeps the message's blocks; `blocks=[]` removes them.
        blocks = self._blocks(params["blocks"]) if "blocks" in params else msg.blocks
        msg.history.append({"text": msg.text, "blocks": copy.deepcopy(msg.blocks)})
        msg.text, msg.blocks = text, blocks
        return {"channel": channel, "ts": msg.ts, "text": text, "message": self._message_json(msg)}

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        user = params.get("user")
        if not isinstance(user, str) or not user:
            raise ApiError("user_not_found")
        text, blocks = self._content(params)
        thread_ts = str(params["thread_ts"]) if params.get("thread_ts") else None
        ts = self._next_ts()
        self._ephemerals.append(Ephemeral(channel, user, text, blocks, ts, thread_ts))
        return {"message_ts": ts}

    def _chat_get_permalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(params)
        msg = self._by_key.get((channel, str(params.get("message_ts", ""))))
        if msg is None:
            raise ApiError("message_not_found")
        link = f"{WORKSPACE_URL}archives/{channel}/p{msg.ts.replace('.', '')}"
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
            raise ApiError("users_list_not_supplied")
        if len(users) == 1:
            return {"channel": {"id": "D" + users[0]}}
        digest = hashlib.sha1(",".join(sorted(users)).encode()).hexdigest()[:10].upper()
        return {"channel": {"id": "G" + digest}}

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        """A modal, as Slack opens it: only for a trigger_id from an interaction in the
        last 3 seconds, used once (`invalid_trigger_id`, `expired_trigger_id`)."""
        trigger = params.get("trigger_id")
        view = params.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        issued = self._triggers.pop(trigger, None) if isinstance(trigger, str) else None
        if issued is None:
            raise ApiError("invalid_trigger_id")
        if time.monotonic() - issued > TRIGGER_SECONDS:
            raise ApiError("expired_trigger_id")
        if not isinstance(view, dict) or view.get("type") != "modal":
            raise ApiError("invalid_arguments")
        for key in ("title", "submit", "close"):
            text = (view.get(key) or {}).get("text", "")
            if (key == "title" and not text) or len(text) > MAX_MODAL_TITLE:
                raise ApiError("invalid_arguments")
        opened = {
            **copy.deepcopy(view),
            "id": "V" + uuid.uuid4().hex[:10].upper(),
            "team_id": self.team_id,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "blocks": self._blocks(view.get("blocks", []), MAX_VIEW_BLOCKS),
            "state": {"values": {}},
            "hash": f"{self._next_ts()}.{uuid.uuid4().hex[:8]}",
        }
        self._modals.append(opened)
        return {"view": copy.deepcopy(opened)}

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = params.get("user_id")
        view = params.get("view")
        if not isinstance(user_id, str) or not user_id:
            raise ApiError("invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "home":
            raise ApiError("invalid_arguments")
        blocks = self._blocks(view.get("blocks", []), MAX_VIEW_BLOCKS)
        history = self._views.setdefault(user_id, [])
        if params.get("hash") and history and params["hash"] != history[-1]["hash"]:
            raise ApiError("hash_conflict")
        view_id = history[-1]["id"] if history else "V" + uuid.uuid4().hex[:10].upper()
        published = {
            **copy.deepcopy(view),
            "id": view_id,
            "team_id": self.team_id,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
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
            raise ApiError("no_such_subteam")
        return {"users": list(users)}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = params.get("user")
        if not isinstance(user_id, str) or not user_id:
            raise ApiError("user_not_found")
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
