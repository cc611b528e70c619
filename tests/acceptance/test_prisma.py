"""The runbook's Scenario 3 (a bad Prisma migration) through the real `backupbot serve`
and CLI: `/backup migrations app` shows the history as Prisma does; a backup records the
head; a migration that fails is a warning in `/backup status` and comes with the exact
`prisma migrate resolve` command; restoring the pre-deploy backup in place warns that the
database is ahead of it, naming the migrations, and the report names what the restored
database lacks.

The source's `_prisma_migrations` is Prisma's table (the sample data's), changed as
`prisma migrate deploy` does (`tests/prisma_world.py`): a migration that creates a table,
then one that fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REVIEWER, Deployment
from tests.acceptance.test_flows import _backup_id, _text, backup_now, request_restore
from tests.prisma_world import deploy

HEAD = "20250201080000_admin_audit"  # the sample data's newest migration
BADGES = "20251201090000_add_badges"
BROKEN = "20251202100000_add_badge_index"
RESOLVE = f'npx prisma migrate resolve --rolled-back "{BROKEN}"'


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(("http", "sqlite"), id="http-sqlite"),
        pytest.param(("socket", "postgresql"), id="socket-pg"),
    ],
)
def dep(
    request: pytest.FixtureRequest,
    pg: Any,
    standin_module: SlackStandin,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """Two of the four installations (one per transport and state database): the Prisma
    facts live below both."""
    url, _counts = source_database(pg)
    deployment = fresh_deployment(
        request.param,
        pg,
        standin_module,
        tmp_path_factory.mktemp("prisma-deploy"),
        databases={"app": url},
    )
    deployment.start()
    yield deployment
    deployment.close()


def _readable(message: Any) -> str:
    """A message's fallback text and every text in its blocks, as a person reads them."""
    body = (
        message if isinstance(message, dict) else {"text": message.text, "blocks": message.blocks}
    )
    texts = [str(body.get("text", ""))]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    texts.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(body.get("blocks", []))
    return "\n".join(texts)


def _ask(dep: Deployment, command: str) -> str:
    """`/backup COMMAND` as the reviewer; the answer only they see, as readable text."""
    before = len(dep.standin.response_posts())
    assert dep.slash(REVIEWER, command).status == 200
    post = dep.wait_response(lambda p: dep.standin.response_posts().index(p) >= before)
    return _readable(post.body)


def _manifest(dep: Deployment, backup_id: str) -> dict[str, Any]:
    [artifact] = dep.store_dir.glob(f"app/*-{backup_id}.dump.zst")
    return dict(json.loads(artifact.with_name(f"{artifact.name[:-9]}.manifest.json").read_text()))


def _prisma_head(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            'SELECT max(migration_name) FROM "_prisma_migrations" '
            "WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL"
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_scenario_3_a_bad_migration_seen_warned_about_and_undone_by_a_restore(
    dep: Deployment,
) -> None:
    source = dep.exported["APP_DATABASE_URL"]
    shown = _ask(dep, "migrations app")
    assert f"head `{HEAD}` · 3 applied, 0 failed, 0 rolled back" in shown, shown
    assert "20250101090000_init" in shown and "finished 2025-01-01 09:00:01" in shown

    first = backup_now(dep, args="app --label pre-deploy")
    first_id = _backup_id(first.text)
    assert f"`{HEAD}`" in _text(first), "the backup message names the head"
    recorded = _manifest(dep, first_id)["prisma_migration"]
    assert recorded["migration_name"] == HEAD
    assert len(recorded["applied"]) == 3 and recorded["failed"] == []

    # The deploy: one migration applies (a new table), the next fails half way.
    with psycopg.connect(source, autocommit=True) as conn:
        deploy(conn, BADGES, 'CREATE TABLE "Badge" (id int PRIMARY KEY)')
        deploy(conn, BROKEN, fails=True)

    shown = _ask(dep, "migrations app")
    assert f"head `{BADGES}` · 4 applied, 1 failed, 0 rolled back" in shown, shown
    assert f"`{BROKEN}` started" in shown and RESOLVE in shown
    assert f"Newest verified backup `{first_id}`" in shown and f"head `{HEAD}`" in shown
    cli = dep.cli("migrations", "app", "--json", check=False)
    assert cli.returncode == 1, "a failed migration fails the command"
    data = json.loads(cli.stdout)
    assert (data["head"], data["resolve_commands"]) == (BADGES, [RESOLVE])
    assert [m["state"] for m in data["migrations"] if m["name"] == BROKEN] == ["failed"]

    second = backup_now(dep)
    assert _manifest(dep, _backup_id(second.text))["prisma_migration"]["failed"] == [BROKEN]
    status = _ask(dep, "status app")
    assert f"Prisma migration `{BROKEN}` failed" in status, status
    assert "/backup migrations app" in status

    # Scenario 3: back to the pre-deploy backup, in place.
    request, restore_id = request_restore(
        dep, f"app {first_id} --in-place --reason 'undo the badge deploy'"
    )
    asked = _readable(request)
    assert "ahead of the backup" in asked and f"`{BADGES}` applied on the target" in asked
    assert BROKEN not in asked.split("ahead of the backup")[1], "a failed one is not applied"
    dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
    dep.wait_message(lambda m: m.ts == request.ts and "Restored and verified" in _text(m))
    reports: list[str] = []

    def reported() -> bool:
        thread = dep.standin.thread(request.channel, request.ts)
        reports[:] = [_readable(m) for m in thread if "Recovered in" in m.text]
        return bool(reports)

    assert dep.standin.wait_for(reported, 60), "no report in the request's thread"
    assert f"*Prisma head:* `{BADGES}` before → `{HEAD}` now" in reports[0], reports[0]
    assert f"lacks 1 migration(s) it had before: `{BADGES}`" in reports[0]
    done = dep.wait_incident(
        lambda i: i.action == "restore.succeeded" and i.details.get("restore_id") == restore_id
    )
    assert done.details["prisma"] == {
        "before": BADGES,
        "after": HEAD,
        "lacks": [BADGES],
        "failed_after": [],
    }
    assert _prisma_head(source) == HEAD, "the restored database really is at the old head"
    # The restore undid the failed migration: status no longer warns of it, though the
    # newest verified backup (the restore's safety backup) saw it.
    after = _ask(dep, "status app")
    assert "Prisma migration" not in after, after
