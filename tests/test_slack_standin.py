"""The Slack stand-in and the request signer, exercised through real HTTP clients."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier

from backupbot.devkit.slack_signer import SignedSlackClient, slack_signature
from backupbot.devkit.slack_standin import SlackStandin

TOKEN = "xoxb-standin"
SECRET = "standin-signing-secret"


@pytest.fixture
def standin() -> Iterator[SlackStandin]:
    with SlackStandin(bot_token=TOKEN) as running:
        yield running


@pytest.fixture
def client(standin: SlackStandin) -> WebClient:
    return WebClient(token=TOKEN, base_url=standin.base_url)


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(action_id: str = "approve", value: str = "v") -> dict[str, Any]:
    text = {"type": "plain_text", "text": "Approve"}
    return {"type": "button", "action_id": action_id, "value": value, "text": text}


def post_raw(url: str, body: bytes, content_type: str) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read().decode()


# -- Web API ---------------------------------------------------------------------------------


def test_post_then_update_keeps_history(standin: SlackStandin, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C1", text="Backup started", blocks=[section("1/3")])
    assert posted["ok"] and posted["channel"] == "C1"
    ts = posted["ts"]
    client.chat_update(channel="C1", ts=ts, text="Backup running", blocks=[section("2/3")])
    client.chat_update(channel="C1", ts=ts, text="Backup done", blocks=[section("3/3")])

    msg = standin.message("C1", ts)
    assert (msg.text, msg.blocks) == ("Backup done", [section("3/3")])
    assert msg.history == [
        {"text": "Backup started", "blocks": [section("1/3")]},
        {"text": "Backup running", "blocks": [section("2/3")]},
    ]
    assert [m.ts for m in standin.messages("C1")] == [ts]

    second = client.chat_postMessage(channel="C1", text="again", thread_ts=ts)
    assert float(second["ts"]) > float(ts)
    assert [m.text for m in standin.thread("C1", ts)] == ["Backup done", "again"]
    # As in Slack, an update without `blocks` keeps the message's blocks.
    client.chat_update(channel="C1", ts=ts, text="text only")
    assert standin.message("C1", ts).blocks == [section("3/3")]
    with pytest.raises(SlackApiError) as missing:
        client.chat_update(channel="C1", ts="1.000000", text="x")
    assert missing.value.response["error"] == "message_not_found"


def test_form_encoded_blocks_are_decoded(standin: SlackStandin, client: WebClient) -> None:
    # api_call with params sends application/x-www-form-urlencoded, blocks as a JSON string.
    blocks = [section("from a form")]
    client.api_call("chat.postMessage", params={"channel": "C1", "blocks": json.dumps(blocks)})
    assert standin.messages("C1")[0].blocks == blocks
    assert standin.calls("chat.postMessage")[0][1]["blocks"] == blocks


def test_ephemeral_recorded(standin: SlackStandin, client: WebClient) -> None:
    result = client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert result["message_ts"]
    [eph] = standin.ephemerals("C1", user="U1")
    assert (eph.channel, eph.user, eph.text, eph.blocks) == ("C1", "U1", "only you", [])
    assert standin.ephemerals(user="U2") == []
    assert standin.messages() == []


def test_invalid_auth(standin: SlackStandin) -> None:
    wrong = WebClient(token="xoxb-wrong", base_url=standin.base_url)
    with pytest.raises(SlackApiError) as err:
        wrong.chat_postMessage(channel="C1", text="hi")
    assert err.value.response["error"] == "invalid_auth"
    assert standin.messages() == []
    assert [m for m, _ in standin.calls()] == ["chat.postMessage"]


def test_auth_test_by_get_with_token_param(standin: SlackStandin) -> None:
    url = f"{standin.base_url}auth.test?token={TOKEN}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        body = json.load(resp)
    assert body["ok"] and body["user_id"] == "U0BOT" and body["team_id"] == "T0STANDIN"


def test_unknown_method(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        client.api_call("chat.scheduleMessage", json={"channel": "C1", "text": "x"})
    assert err.value.response["error"] == "unknown_method"


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        pytest.param([section("x")] * 51, "/blocks]", id="51-blocks"),
        pytest.param([section("x" * 3001)], "/blocks/0/text/text", id="section-text-3001"),
        pytest.param(
            [{"type": "actions", "elements": [button(value="v" * 2001)]}],
            "/blocks/0/elements/0/value",
            id="button-value-2001",
        ),
        pytest.param(
            [{**section("x"), "accessory": button(action_id="a" * 256)}],
            "/blocks/0/accessory/action_id",
            id="action-id-256",
        ),
        pytest.param(
            [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
            "/blocks/0/text/text",
            id="header-151",
        ),
        pytest.param(
            [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
            "/blocks/0/fields/0/text",
            id="field-2001",
        ),
    ],
)
def test_block_kit_limits_rejected(
    standin: SlackStandin, client: WebClient, blocks: list[dict], pointer: str
) -> None:
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="fallback", blocks=blocks)
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "invalid_blocks"
    assert any(pointer in e for e in err.value.response["errors"])
    assert standin.messages() == []
    assert len(standin.calls("chat.postMessage")) == 1


def test_block_kit_limits_apply_to_update_and_ephemeral(
    standin: SlackStandin, client: WebClient
) -> None:
    ts = client.chat_postMessage(channel="C1", text="ok")["ts"]
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        client.chat_update(channel="C1", ts=ts, text="t", blocks=[section("x" * 3001)])
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        client.chat_postEphemeral(channel="C1", user="U1", text="t", blocks=[section("")])
    assert standin.message("C1", ts).history == []
    assert standin.ephemerals() == []


def test_limits_at_the_boundary_are_accepted(standin: SlackStandin, client: WebClient) -> None:
    blocks = [section("x" * 3000), {"type": "actions", "elements": [button("a" * 255, "v" * 2000)]}]
    client.chat_postMessage(channel="C1", text="t", blocks=blocks + [section("y")] * 48)
    assert len(standin.messages("C1")[0].blocks) == 50


def test_text_limits(standin: SlackStandin, client: WebClient) -> None:
    with pytest.raises(SlackApiError, match="msg_too_long"):
        client.chat_postMessage(channel="C1", text="x" * 40001)
    with pytest.raises(SlackApiError, match="no_text"):
        client.api_call("chat.postMessage", json={"channel": "C1", "text": ""})
    with pytest.raises(SlackApiError, match="channel_not_found"):
        client.api_call("chat.postMessage", json={"text": "x"})
    assert standin.messages() == []


def test_rate_limit_is_retried_by_sdk(standin: SlackStandin) -> None:
    retrying = WebClient(
        token=TOKEN,
        base_url=standin.base_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    standin.rate_limit("chat.postMessage", times=1, retry_after=1)
    result = retrying.chat_postMessage(channel="C1", text="eventually")
    assert result["ok"]
    assert [m.text for m in standin.messages("C1")] == ["eventually"]
    assert len(standin.calls("chat.postMessage")) == 2


def test_rate_limit_without_retry_surfaces_429(standin: SlackStandin, client: WebClient) -> None:
    standin.rate_limit("chat.postMessage", times=1, retry_after=7)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="dropped")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.response["error"] == "ratelimited"
    client.chat_postMessage(channel="C1", text="next one passes")
    assert [m.text for m in standin.messages()] == ["next one passes"]


def test_usergroups_users_list(standin: SlackStandin, client: WebClient) -> None:
    standin.set_usergroup("S0DBA", ["U1", "U2"])
    assert client.usergroups_users_list(usergroup="S0DBA")["users"] == ["U1", "U2"]
    with pytest.raises(SlackApiError, match="no_such_subteam"):
        client.usergroups_users_list(usergroup="S0NOPE")


def test_conversations_open_and_dm(standin: SlackStandin, client: WebClient) -> None:
    first = client.conversations_open(users="U1")["channel"]["id"]
    assert first == client.conversations_open(users=["U1"])["channel"]["id"] == "DU1"
    assert client.conversations_open(users="U2")["channel"]["id"] != first
    posted = client.chat_postMessage(channel="U1", text="to a user id")
    assert posted["channel"] == first
    assert [m.text for m in standin.messages(first)] == ["to a user id"]


def test_permalink_users_info_and_home_view(standin: SlackStandin, client: WebClient) -> None:
    ts = client.chat_postMessage(channel="C1", text="x")["ts"]
    link = client.chat_getPermalink(channel="C1", message_ts=ts)["permalink"]
    assert link.endswith("/archives/C1/p" + ts.replace(".", ""))
    user = client.users_info(user="U1")["user"]
    assert (user["id"], user["tz"], user["is_bot"]) == ("U1", "UTC", False)
    view = {"type": "home", "blocks": [section("home")]}
    client.views_publish(user_id="U1", view=view)
    assert standin.published_views("U1")[-1]["blocks"] == [section("home")]
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        client.views_publish(user_id="U1", view={"type": "home", "blocks": [section("")] * 2})
    assert len(standin.published_views("U1")) == 1


def test_views_open_takes_a_fresh_trigger_once(standin: SlackStandin, client: WebClient) -> None:
    modal = {
        "type": "modal",
        "callback_id": "c",
        "title": {"type": "plain_text", "text": "Sign off"},
        "blocks": [section("why?")],
    }
    with pytest.raises(SlackApiError, match="invalid_trigger_id"):
        client.views_open(trigger_id="1.2.never-issued", view=modal)
    standin.issue_trigger("1.2.abc")
    opened = client.views_open(trigger_id="1.2.abc", view=modal)["view"]
    assert opened["id"].startswith("V") and opened["callback_id"] == "c"
    assert [m["id"] for m in standin.opened_modals()] == [opened["id"]]
    with pytest.raises(SlackApiError, match="invalid_trigger_id"):  # used once
        client.views_open(trigger_id="1.2.abc", view=modal)
    standin.issue_trigger("1.2.def")
    with pytest.raises(SlackApiError, match="invalid_arguments"):  # a title over 24 chars
        client.views_open(
            trigger_id="1.2.def", view={**modal, "title": {"type": "plain_text", "text": "x" * 25}}
        )


def test_response_url_posts(standin: SlackStandin) -> None:
    url = standin.new_response_url()
    other = standin.new_response_url()
    body = {"text": "done", "response_type": "ephemeral", "replace_original": False}
    assert post_raw(url, json.dumps(body).encode(), "application/json") == (200, "ok")
    assert [(p.id, p.body) for p in standin.response_posts(url)] == [(url.rsplit("/")[-1], body)]
    assert standin.response_posts(other) == []

    too_big = json.dumps({"blocks": [section("x" * 3001)]}).encode()
    assert post_raw(url, too_big, "application/json") == (400, "invalid_blocks")
    unknown = standin.root_url + "/response/never-issued"
    assert post_raw(unknown, b'{"text": "x"}', "application/json")[0] == 404
    assert len(standin.response_posts()) == 1
    assert len(standin.calls("response_url")) == 3
    assert standin.messages() == []


def test_response_url_use_limit(standin: SlackStandin) -> None:
    url = standin.new_response_url()
    statuses = [post_raw(url, b'{"text": "x"}', "application/json")[0] for _ in range(6)]
    assert statuses == [200] * 5 + [404]


def test_wait_for_message_from_another_thread(standin: SlackStandin, client: WebClient) -> None:
    poster = threading.Thread(target=client.chat_postMessage, kwargs={"channel": "C1", "text": "x"})
    poster.start()
    try:
        assert standin.wait_for(lambda: len(standin.messages("C1")) == 1, timeout=10)
    finally:
        poster.join()


def test_wait_for_times_out(standin: SlackStandin) -> None:
    assert standin.wait_for(lambda: bool(standin.messages()), timeout=0.05) is False


def test_reset_forgets_everything(standin: SlackStandin, client: WebClient) -> None:
    client.chat_postMessage(channel="C1", text="x")
    standin.set_usergroup("S1", ["U1"])
    standin.reset()
    assert standin.messages() == [] and standin.calls() == []
    with pytest.raises(SlackApiError, match="no_such_subteam"):
        client.usergroups_users_list(usergroup="S1")


# -- signer ----------------------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """Records each request and answers 200, or 401 when the signature does not verify."""

    requests: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = dict(self.headers.items())
        self.requests.append((headers, body))
        verifier = SignatureVerifier(SECRET)
        valid = verifier.is_valid(
            body, headers.get("X-Slack-Request-Timestamp", ""), headers.get("X-Slack-Signature", "")
        )
        reply = b"" if valid else b'{"error": "bad signature"}'
        self.send_response(200 if valid else 401)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    requests: list[tuple[dict[str, str], bytes]] = []
    handler = type("Handler", (_Recorder,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/slack/events", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_signer_signature_verifies(
    recorder: tuple[str, list[tuple[dict[str, str], bytes]]], standin: SlackStandin
) -> None:
    url, requests = recorder
    signer = SignedSlackClient(url, SECRET, standin=standin)
    response = signer.slash_command("U1", "run orders")
    assert response.status == 200 and response.elapsed >= 0 and response.json() == {}

    headers, body = requests[0]
    timestamp, signature = headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    assert SignatureVerifier(SECRET).is_valid(body, timestamp, signature)
    assert signature == slack_signature(SECRET, timestamp, body)
    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
    assert (form["command"], form["text"], form["user_id"]) == ("/backup", "run orders", "U1")
    assert form["response_url"].startswith(standin.root_url + "/response/")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_signer_block_action_payload(
    recorder: tuple[str, list[tuple[dict[str, str], bytes]]],
    standin: SlackStandin,
    client: WebClient,
) -> None:
    url, requests = recorder
    ts = client.chat_postMessage(channel="C1", text="approve?", blocks=[section("approve?")])["ts"]
    signer = SignedSlackClient(url, SECRET, standin=standin)
    assert signer.block_action("U2", "approve", "req-1", "C1", ts).status == 200

    payload = json.loads(parse_qs(requests[0][1].decode())["payload"][0])
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U2" and payload["team"]["id"] == "T0STANDIN"
    assert payload["actions"][0] | {"action_ts": None} == {
        "action_id": "approve",
        "block_id": "b",
        "value": "req-1",
        "type": "button",
        "action_ts": None,
    }
    assert payload["container"] == {
        "type": "message",
        "message_ts": ts,
        "channel_id": "C1",
        "is_ephemeral": False,
    }
    assert payload["message"]["ts"] == ts and payload["message"]["blocks"] == [section("approve?")]


def test_signer_bad_signature_and_stale_timestamp_are_returned(
    recorder: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    url, _ = recorder
    signer = SignedSlackClient(url, SECRET)
    forged = signer.send_raw(b"text=x", "application/x-www-form-urlencoded", signature="v0=00")
    assert forged.status == 401 and forged.json() == {"error": "bad signature"}
    stale = signer.send_raw(b"text=x", "application/x-www-form-urlencoded", timestamp=1)
    assert stale.status == 401


# -- file uploads (files_upload_v2) ------------------------------------------------------


def test_files_upload_v2_goes_through_the_upload_flow_and_keeps_the_bytes(
    standin: SlackStandin, client: WebClient
) -> None:
    sent = client.files_upload_v2(
        channel="C1",
        content=b"\x89PNG fake",
        filename="chart.png",
        title="A chart",
        initial_comment="3 points",
        thread_ts="1700000000.000100",
    )
    [f] = standin.uploaded_files("C1")
    assert f.data == b"\x89PNG fake" and f.filename == "chart.png" and f.title == "A chart"
    assert (f.initial_comment, f.thread_ts, f.length) == ("3 points", "1700000000.000100", 9)
    assert sent["file"]["id"] == f.id
    assert [c for c, _ in standin.calls()] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]


def test_complete_upload_refuses_files_whose_bytes_never_arrived(
    standin: SlackStandin, client: WebClient
) -> None:
    url = client.files_getUploadURLExternal(filename="x.png", length=3)
    with pytest.raises(SlackApiError) as raised:
        client.files_completeUploadExternal(files=[{"id": url["file_id"]}], channel_id="C1")
    assert raised.value.response["error"] == "file_not_found"
    with pytest.raises(SlackApiError) as raised:
        client.files_getUploadURLExternal(filename="", length=3)
    assert raised.value.response["error"] == "invalid_arguments"
    assert standin.uploaded_files() == []
