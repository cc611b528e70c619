"""Results survive a Slack outage, through the real `backupbot serve`: with the stand-in
answering HTTP 500 to every chat.postMessage and chat.update, a backup's and a restore's
results wait in the outbox (written before they were sent); once Slack answers again,
serve's housekeeping delivers each exactly once, in the right message.

No time passes by sleeping: the test waits for the outbox row to show a failed attempt,
then ends the outage, then waits for the delivery.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REQUESTER, REVIEWER, Deployment
from tests.acceptance.test_flows import _backup_id, _text, backup_now, request_restore
from tests.conftest import wait_until

KINDS = [
    pytest.param(("http", "sqlite"), id="http-sqlite"),
    pytest.param(("socket", "postgresql"), id="socket-pg"),
]
WRITES = ("chat.postMessage", "chat.update")


@pytest.fixture(scope="module", params=KINDS)
def dep(
    request: pytest.FixtureRequest, pg: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    url, _counts = source_database(pg)
    with SlackStandin() as standin:
        deployment = fresh_deployment(
            request.param, pg, standin, tmp_path_factory.mktemp("outbox"), databases={"app": url}
        )
        deployment.start()
        yield deployment
        standin.clear_faults()
        deployment.close()


def _outbox(dep: Deployment, key: str) -> list[tuple[str, int, str | None]]:
    """(status, attempts, ts) of every version of `key`, oldest first."""
    engine = create_engine(dep.state_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT status, attempts, ts FROM outbox WHERE key = :k ORDER BY id"), {"k": key}
        ).all()
    engine.dispose()
    return [(r[0], r[1], r[2]) for r in rows]


def _slack_down(dep: Deployment) -> None:
    for method in WRITES:
        dep.standin.server_error(method, times=None)


def _slack_up(dep: Deployment) -> None:
    for method in WRITES:
        dep.standin.clear_faults(method)


def _waiting_after_a_failure(dep: Deployment, key: str) -> None:
    def check() -> bool:
        rows = _outbox(dep, key)
        return bool(rows) and rows[-1][0] == "pending" and rows[-1][1] >= 1

    assert wait_until(check, timeout=90), f"{key} never waited in the outbox: {_outbox(dep, key)}"


def test_a_backup_result_lost_to_an_outage_arrives_once_slack_is_back(dep: Deployment) -> None:
    _slack_down(dep)
    answer = dep.slash(REQUESTER, "now app")
    assert answer.status == 200
    backup_id = _backup_id(_text(answer.json()))
    dep.wait_incident(lambda i: i.action == "backup.succeeded" and i.backup_id == backup_id)
    _waiting_after_a_failure(dep, f"backup:{backup_id}")
    assert not [m for m in dep.standin.messages() if backup_id in _text(m)]

    _slack_up(dep)
    shown = dep.wait_message(lambda m: backup_id in _text(m) and "succeeded" in m.text)
    assert wait_until(lambda: _outbox(dep, f"backup:{backup_id}")[-1][0] == "delivered")
    assert [m.ts for m in dep.standin.messages() if backup_id in _text(m)] == [shown.ts]


def test_a_restore_result_and_report_wait_for_slack_and_arrive_in_their_message(
    dep: Deployment, pg: Any
) -> None:
    backup_now(dep)
    target = f"outage_{dep.transport}_{dep.state_kind}"
    pg.drop_database(target)
    request, restore_id = request_restore(dep, f"app latest --into {target}")
    _slack_down(dep)
    dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
    dep.wait_incident(
        lambda i: i.action == "restore.succeeded" and i.details.get("restore_id") == restore_id
    )
    _waiting_after_a_failure(dep, f"restore:{restore_id}")
    current = next(m for m in dep.standin.messages() if m.ts == request.ts)
    assert "Restored and verified" not in _text(current)  # Slack was not told yet

    _slack_up(dep)
    dep.wait_message(lambda m: m.ts == request.ts and "Restored and verified" in _text(m))

    def one_report() -> bool:
        replies = dep.standin.thread(request.channel, request.ts)
        return len([m for m in replies if "Recovered in" in m.text]) == 1

    assert wait_until(one_report), dep.standin.thread(request.channel, request.ts)
    statuses = [row[0] for row in _outbox(dep, f"restore:{restore_id}")]
    assert statuses[-1] == "delivered" and "pending" not in statuses
    assert _outbox(dep, f"restore:{restore_id}:report")[-1][0] == "delivered"
