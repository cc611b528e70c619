"""Hostile text never becomes live Slack markup.

Anyone who can type `/backup` chooses labels and restore reasons, and a database server
chooses its error messages and table names. Each of them here carries `<!channel>`,
`<!here>`, `<!everyone>`, a user mention and a disguised link; the real `backupbot serve`
shows them in every message kind (backup started and result, a failed backup and its
alert, a restore request and its approval, status, retention, the log, usage errors).
Every `<…>` sequence in everything Slack received must be one the renderer made: a
mention of a real actor, the channel, or a permalink the stand-in issued.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import CHANNEL, REQUESTER, REVIEWER, Deployment
from tests.acceptance.test_flows import backup_now, request_restore

HOSTILE = "<!channel> <!here> <!everyone> <@U0BOSS> <#C0OTHER> <https://evil.example|Approve>"
HOSTILE_TABLE = "<!channel> <https://evil.example|Approve here>"
LIVE = re.compile(r"<([^<>]*)>")


@pytest.fixture(params=[("http", "sqlite"), ("socket", "postgresql")], ids=["http", "socket"])
def hostile_deployment(
    request: pytest.FixtureRequest, pg: Any, tmp_path: Path
) -> Iterator[Deployment]:
    """`app` with a table whose name is hostile; `broken`, whose server answers with an
    error naming a hostile database."""
    url, _counts = source_database(pg)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(HOSTILE_TABLE)))
        conn.execute(
            sql.SQL("INSERT INTO {} SELECT generate_series(1, 3)").format(
                sql.Identifier(HOSTILE_TABLE)
            )
        )
    broken = url.rsplit("/", 1)[0] + "/%3C%21everyone%3E%20%3Chttps%3A%2F%2Fevil.example%7Cfix%3E"
    with SlackStandin() as standin:
        dep = fresh_deployment(
            request.param,
            pg,
            standin,
            tmp_path / "deploy",
            databases={"app": url, "broken": broken},
        )
        dep.start()
        yield dep
        dep.close()


def _everything_slack_got(dep: Deployment, answers: list[dict[str, Any]]) -> list[str]:
    texts = [m.text + json.dumps(m.blocks) for m in dep.standin.messages()]
    texts += [json.dumps(p.body) for p in dep.standin.response_posts()]
    texts += [json.dumps(a) for a in answers]
    return texts


def _renderers_own(token: str, permalink_base: str) -> bool:
    if token in (f"@{REQUESTER}", f"@{REVIEWER}", f"#{CHANNEL}"):
        return True
    return token.startswith(permalink_base) and "evil" not in token


def test_hostile_labels_reasons_table_names_and_server_errors_stay_text(
    hostile_deployment: Deployment,
) -> None:
    dep = hostile_deployment
    answers: list[dict[str, Any]] = []

    def slash(user: str, text: str) -> None:
        answer = dep.slash(user, text)
        assert answer.status == 200
        if answer.body:
            answers.append(answer.json())

    done = backup_now(dep, args=f"app --label '{HOSTILE}'")
    assert "succeeded" in done.text
    request, _rid = request_restore(dep, f"app latest --reason '{HOSTILE}'")
    assert "evil.example" in json.dumps(request.blocks)  # shown, as text
    failed = backup_now(dep, args="broken --label x")
    assert "failed" in failed.text
    before = len(dep.standin.response_posts())
    slash(REQUESTER, "status")
    slash(REQUESTER, "retention")
    slash(REQUESTER, "log 30")
    slash(REQUESTER, f"now app --label '{HOSTILE}\u0007'")  # refused: not one line
    slash(REQUESTER, f"restore app {HOSTILE}")  # refused: too many words
    slash(REQUESTER, f"frobnicate {HOSTILE}")  # refused: not a command
    # status, retention and log answer later, at the response_url
    assert dep.standin.wait_for(lambda: len(dep.standin.response_posts()) >= before + 3, 60)

    permalink_base = dep.standin.base_url.split("/api")[0]
    texts = _everything_slack_got(dep, answers)
    assert any("evil.example" in t for t in texts)
    leaks = sorted(
        {
            token
            for t in texts
            for token in LIVE.findall(t)
            if not _renderers_own(token, permalink_base)
        }
    )
    assert leaks == [], f"live markup from user or server text reached Slack: {leaks}"
    # The refusals above are recorded, in plain text.
    rejected = [i for i in dep.incidents() if i.action == "command.rejected"]
    assert len(rejected) >= 3
    assert all("`" not in json.dumps(i.details) for i in rejected)
