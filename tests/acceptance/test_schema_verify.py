"""Restores and drills check the schema, not only the rows, through the real `backupbot
serve`: a restore that really loses an index fails verification naming it, in Slack and
in the incident records; a normal drill passes and says the schema matched.

How the restore is made to lose the index: the target database (an existing, empty one,
as `--into` allows) has an event trigger that drops `Opportunity_createdAt_idx` as soon
as pg_restore creates it. Nothing of backupbot's is tampered with: the backup, its
manifest and artifact are the real ones, the real pg_restore runs, and the restored
database genuinely lacks the index. Editing the manifest instead would only prove the
comparison reads the manifest; this proves a real loss is caught.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REQUESTER, REVIEWER, Deployment
from tests.acceptance.test_flows import _backup_id, _text, backup_now, request_restore

INDEX = "Opportunity_createdAt_idx"
LOSE_INDEX = f"""
CREATE FUNCTION lose_index() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    IF r.object_identity = 'public."{INDEX}"' THEN
      EXECUTE 'DROP INDEX ' || r.object_identity;
    END IF;
  END LOOP;
END $$;
CREATE EVENT TRIGGER lose_index ON ddl_command_end WHEN TAG IN ('CREATE INDEX')
  EXECUTE FUNCTION lose_index();
"""


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(("http", "sqlite"), id="http-sqlite"),
        pytest.param(("socket", "postgresql"), id="socket-pg"),
    ],
)
def schema_deployment(
    request: pytest.FixtureRequest,
    pg: Any,
    standin_module: SlackStandin,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """Two of the four installations (one per transport and state database): the check
    lives below both."""
    url, _counts = source_database(pg)
    dep = fresh_deployment(
        request.param,
        pg,
        standin_module,
        tmp_path_factory.mktemp("schema-deploy"),
        databases={"app": url},
    )
    dep.start()
    yield dep
    dep.close()


def _indexes(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
        return {r[0] for r in rows.fetchall()}


def test_a_restore_that_loses_an_index_fails_verification_naming_it(
    schema_deployment: Deployment, pg: Any
) -> None:
    dep = schema_deployment
    message = backup_now(dep)
    assert "succeeded" in message.text, _text(message)
    backup_id = _backup_id(message.text)
    [artifact] = dep.store_dir.glob(f"app/*-{backup_id}.dump.zst")
    manifest = json.loads(artifact.with_name(f"{artifact.name[:-9]}.manifest.json").read_text())
    assert INDEX in manifest["schema"]["tables"]["public.Opportunity"]["indexes"]

    target = f"lossy_{dep.transport}_{dep.state_kind}"
    target_url = pg.create_database(target)
    pg.execute(LOSE_INDEX, target)
    request, restore_id = request_restore(dep, f"app {backup_id} --into {target} --reason drill")
    assert "verify row counts of 9 table(s) and the schema" in _text(request)
    dep.click(REVIEWER, "restore_approve", restore_id, request.ts)

    dep.wait_message(lambda m: m.ts == request.ts and "Restore failed" in _text(m))
    reports: list[str] = []

    def reported() -> bool:
        thread = dep.standin.thread(request.channel, request.ts)
        reports[:] = [
            m.text + json.dumps(m.blocks, ensure_ascii=False)
            for m in thread
            if m.text.startswith("Restore failed")
        ]
        return bool(reports)

    assert dep.standin.wait_for(reported, 60), "no failure report in the request's thread"
    assert f"• index `public.{INDEX}` missing" in reports[0], reports[0]
    assert "*Schema differences from the backup:*" in reports[0]
    assert INDEX not in _indexes(target_url), "the restored database really lacks it"
    assert "Opportunity_expiresAt_active_idx" in _indexes(target_url), "the rest is there"

    verified = dep.wait_incident(
        lambda i: i.action == "restore.verified" and i.details.get("restore_id") == restore_id
    )
    assert verified.outcome == "failed"
    assert verified.details["schema"] == "failed"
    assert [d["text"] for d in verified.details["schema_differences"]] == [
        f"index public.{INDEX} missing"
    ]
    assert verified.details["mismatches"] == [], "every row is there: only the index is not"
    failed = dep.wait_incident(
        lambda i: i.action == "restore.failed" and i.details.get("restore_id") == restore_id
    )
    assert failed.details["error_type"] == "_VerificationMismatch"
    assert f"index public.{INDEX} missing" in failed.details["error"]
    assert failed.details["stage"] == "verify"

    pg.drop_database(target)


def test_a_normal_drill_passes_and_its_records_say_the_schema_matched(
    schema_deployment: Deployment,
) -> None:
    dep = schema_deployment
    backup_now(dep)
    before = {m.ts for m in dep.standin.messages()}
    dep.slash(REQUESTER, "drill app")
    drill = dep.wait_message(
        lambda m: m.ts not in before and m.text.startswith("Restore drill of app passed")
    )
    assert "so does the schema" in _text(drill)
    passed = dep.wait_action("drill.passed", "app")
    assert passed.details["schema"] == "ok"
    verified = dep.wait_incident(
        lambda i: i.action == "restore.verified" and i.backup_id == passed.backup_id
    )
    assert verified.outcome == "ok"
    assert verified.details["schema"] == "ok" and verified.details["schema_differences"] == []
