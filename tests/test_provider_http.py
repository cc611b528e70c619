"""ProviderHttp, the client every provider adapter uses, against the stand-in base over
real HTTP: JSON in and out, the waits 429 answers ask for (Retry-After as seconds or a
date, X-RateLimit-Reset as seconds or a Unix time, Ratelimit-Reset), 423 and 5xx
retried with backoff, transport errors, and errors that never carry the credential."""

from __future__ import annotations

import logging
import secrets
import socket
import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest

from backupbot.devkit.providers.standin import Answer, Fault, ProviderStandIn
from backupbot.errors import ProviderError
from backupbot.storage.providers.http import ProviderHttp, RetryPolicy

TOKEN = "tok-" + secrets.token_hex(12)


@pytest.fixture
def server() -> Iterator[ProviderStandIn]:
    standin = ProviderStandIn(TOKEN)
    standin.route("GET", r"/things/(?P<id>\w+)", lambda r: Answer(200, {"id": r.groups["id"]}))
    standin.route("POST", r"/things", lambda r: Answer(201, None))
    standin.route("GET", r"/echo", lambda r: Answer(200, {"params": r.params}))
    standin.route("GET", r"/bad", lambda r: Answer(400, {"message": "the  id\nis wrong"}))
    standin.route(
        "GET", r"/gql", lambda r: Answer(403, {"errors": [{"message": "Not Authorized"}]})
    )
    yield standin.start()
    standin.close()


def client(server: ProviderStandIn, sleeps: list[float], token: str = TOKEN) -> ProviderHttp:
    return ProviderHttp(
        "neon", server.url, {"Authorization": f"Bearer {token}"}, sleep=sleeps.append
    )


def test_json_in_and_out(server: ProviderStandIn) -> None:
    http = client(server, [])
    assert http.request("GET", "/things/a1") == {"id": "a1"}
    assert http.request("POST", "/things", json={"name": "x"}) is None  # an empty 201
    assert http.request("GET", "/echo", params={"n": 3}) == {"params": {"n": "3"}}
    post = next(r for r in server.requests if r.method == "POST")
    assert post.body == {"name": "x"} and post.headers["authorization"] == f"Bearer {TOKEN}"


def test_429_waits_as_each_header_says(server: ProviderStandIn) -> None:
    sleeps: list[float] = []
    unix = time.time() + 20
    server.inject(Fault(429, headers={"Retry-After": "3"}))
    server.inject(Fault(429, headers={"Retry-After": formatdate(time.time() + 10, usegmt=True)}))
    server.inject(Fault(429, headers={"X-RateLimit-Reset": "4"}))
    server.inject(Fault(429, headers={"X-RateLimit-Reset": f"{unix:.0f}"}))
    assert client(server, sleeps).request("GET", "/things/a") == {"id": "a"}
    assert sleeps[0] == 3.0 and sleeps[2] == 4.0
    assert 8 <= sleeps[1] <= 11 and 18 <= sleeps[3] <= 21
    sleeps.clear()
    server.inject(Fault(429, headers={"Ratelimit-Reset": "2"}))
    server.inject(Fault(429, headers={"Retry-After": "3600"}))  # capped
    assert client(server, sleeps).request("GET", "/things/b") == {"id": "b"}
    assert sleeps == [2.0, 30.0]


def test_423_and_5xx_back_off_then_give_up_as_retryable(server: ProviderStandIn) -> None:
    sleeps: list[float] = []
    server.inject(Fault(423))
    server.inject(Fault(502))
    assert client(server, sleeps).request("GET", "/things/a") == {"id": "a"}
    assert sleeps == [0.5, 1.0]
    sleeps.clear()
    server.inject(Fault(503, times=5, body={"message": "busy"}))
    with pytest.raises(ProviderError) as caught:
        client(server, sleeps).request("GET", "/things/a")
    assert not caught.value.permanent and caught.value.status == 503
    assert "answered 503 after 5 attempts: busy" in str(caught.value)
    assert sleeps == [0.5, 1.0, 2.0, 4.0]


def test_errors_are_permanent_with_the_providers_words_and_a_hint(server: ProviderStandIn) -> None:
    http = client(server, [])
    with pytest.raises(ProviderError) as bad:
        http.request("GET", "/bad")
    assert bad.value.permanent and bad.value.status == 400
    assert str(bad.value) == "neon's API answered 400: the id is wrong"
    with pytest.raises(ProviderError, match="403: Not Authorized; the API key lacks access"):
        http.request("GET", "/gql")
    with pytest.raises(ProviderError, match="404: no route GET /nothing; check the IDs"):
        http.request("GET", "/nothing")


def test_a_refused_key_never_shows(
    server: ProviderStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "tok-" + secrets.token_hex(12)
    with pytest.raises(ProviderError) as caught:
        client(server, [], token=wrong).request("GET", "/things/a")
    assert caught.value.permanent and caught.value.status == 401
    assert "check the API key (api_key)" in str(caught.value)
    for secret in (wrong, TOKEN):
        assert secret not in str(caught.value) and secret not in caplog.text


def test_an_unreachable_api_is_retried_then_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    sleeps: list[float] = []
    http = ProviderHttp(
        "render",
        f"http://127.0.0.1:{port}",
        {"Authorization": f"Bearer {TOKEN}"},
        policy=RetryPolicy(attempts=3),
        sleep=sleeps.append,
        timeout=2,
    )
    with pytest.raises(ProviderError) as caught:
        http.request("GET", "/postgres/x")
    assert not caught.value.permanent and "could not be reached" in str(caught.value)
    assert sleeps == [0.5, 1.0] and TOKEN not in str(caught.value)


def test_stand_ins_hold_requests_to_the_contracts() -> None:
    """A body the spec does not allow is a 400, as the provider would answer."""
    from datetime import UTC, datetime

    from backupbot.devkit.providers.databases import ClusterDatabases
    from backupbot.devkit.providers.neon import NeonStandIn
    from backupbot.devkit.providers.railway import RailwayStandIn

    databases = ClusterDatabases("postgresql://u:p@127.0.0.1:9/postgres", {datetime.now(UTC): "x"})
    neon = NeonStandIn(TOKEN, databases).start()
    railway = RailwayStandIn(TOKEN, databases).start()
    try:
        http = client(neon, [])
        with pytest.raises(ProviderError, match="does not match createProjectBranch") as caught:
            http.request(
                "POST",
                f"/projects/{neon.project_id}/branches",
                json={"branch": {"parent_id": "Not_An_Id"}},
            )
        assert caught.value.status == 400
        gql = ProviderHttp("railway", railway.url, {"Project-Access-Token": TOKEN}, sleep=[].append)
        answer = gql.request(
            "POST", railway.url, json={"query": "query { volumeInstance(nope: 1) { id } }"}
        )
        assert "unknown arguments ['nope'], missing ['id']" in answer["errors"][0]["message"]
    finally:
        neon.close()
        railway.close()
