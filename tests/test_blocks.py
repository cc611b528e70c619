"""Block Kit rendering: every message fits Slack's limits and says what happened."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backupbot.bot.slack import kit
from backupbot.bot.slack.blocks import backup as backup_blocks
from backupbot.bot.slack.blocks import status as status_blocks
from backupbot.bot.slack.kit import Message, esc
from backupbot.commands.backup_progress import Progress
from backupbot.commands.command_spec import usage_of
from backupbot.commands.registry import Surface, specs
from backupbot.commands.status import DatabaseStatus, DrillSummary
from backupbot.devkit.slack_standin import MAX_MESSAGE_TEXT, block_kit_errors
from backupbot.phrases import Command, say
from backupbot.settings.connection_advice import pooler_advice
from backupbot.storage.catalog import FAILED, RUNNING, SUCCEEDED, BackupRecord
from backupbot.storage.incident_chain import ChainCheck
from backupbot.storage.incidents import Incident

INTACT = ChainCheck(records=3)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SHA = "ab" * 32

NEON_POOLER_URL = "postgresql://app@ep-quiet-lake-a1b2c3-pooler.us-east-2.aws.neon.tech/app"


def record(**overrides: Any) -> BackupRecord:
    base = BackupRecord(
        id="1a2b3c4d",
        database="app",
        status=RUNNING,
        actor="U0ALICE",
        label=None,
        started_at=NOW - timedelta(minutes=3),
        heartbeat_at=NOW - timedelta(minutes=1),
        finished_at=None,
        progress_bytes=0,
        store="local",
        artifact_key=None,
        manifest_key=None,
        location=None,
        raw_size=None,
        stored_size=None,
        sha256=None,
        compression=None,
        server_version=None,
        pg_dump_version=None,
        manifest=None,
        error=None,
    )
    return dataclasses.replace(base, **overrides)


def succeeded(**overrides: Any) -> BackupRecord:
    values: dict[str, Any] = {
        "status": SUCCEEDED,
        "finished_at": NOW - timedelta(minutes=1),
        "artifact_key": "app/20240501T115700Z-1a2b3c4d.dump.zst",
        "manifest_key": "app/20240501T115700Z-1a2b3c4d.manifest.json",
        "location": "/srv/backups/app/20240501T115700Z-1a2b3c4d.dump.zst",
        "raw_size": 10 * 1024 * 1024,
        "stored_size": 1536 * 1024,
        "sha256": SHA,
        "compression": "zstd-3",
        "server_version": "16.2",
        "pg_dump_version": "pg_dump (PostgreSQL) 16.2",
        "manifest": {
            "artifact": "20240501T115700Z-1a2b3c4d.dump.zst",
            "row_counts": {"public.users": 120, "public.orders": 3400},
        },
        **overrides,
    }
    return record(**values)


def failed(error: str | None = "pg_dump exited with code 1", **overrides: Any) -> BackupRecord:
    return record(status=FAILED, finished_at=NOW - timedelta(minutes=2), error=error, **overrides)


def status(name: str = "app", **overrides: Any) -> DatabaseStatus:
    values: dict[str, Any] = {
        "name": name,
        "provider": "neon",
        "now": NOW,
        "last_success": None,
        "last_failure": None,
        "running": None,
        "kept": 0,
        "warnings": [],
        "rto_minutes": 30,
        **overrides,
    }
    return DatabaseStatus(**values)


# newest first, as status reads them: a running drill, a reviewed pass, a failed restore,
# a pass judged against the RTO of 60 min the database had then
DRILLS = [
    DrillSummary("running", NOW, None, 30),
    DrillSummary("passed", NOW - timedelta(days=1), 250.0, 30, reviewed_by="U0BOB"),
    DrillSummary("failed", NOW - timedelta(days=31), None, 30, "pg_restore failed"),
    DrillSummary("passed", NOW - timedelta(days=61), 2400.0, 60),
]


def incident(n: int, **overrides: Any) -> Incident:
    values: dict[str, Any] = {
        "id": n,
        "at": NOW - timedelta(minutes=n),
        "actor": "U0ALICE",
        "database": "app",
        "action": "backup",
        "outcome": "succeeded",
        "backup_id": f"{n:08x}",
        "details": {},
        **overrides,
    }
    return Incident(**values)


def texts(node: Any) -> list[str]:
    """Every `text` string anywhere in the blocks, in order."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(texts(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(texts(item))
    return found


def shown(msg: Message) -> str:
    return "\n".join(texts(msg.blocks))


def assert_slack_accepts(msg: Message) -> None:
    assert block_kit_errors(msg.blocks) == []
    assert msg.text.strip()
    assert len(msg.text) <= MAX_MESSAGE_TEXT
    for block in msg.blocks:
        if block["type"] == "context":
            assert 1 <= len(block["elements"]) <= 10
            for element in block["elements"]:
                assert 1 <= len(element["text"]) <= 3000
    assert msg.as_kwargs() == {"text": msg.text, "blocks": msg.blocks}


# --- every renderer produces a valid message -------------------------------------------------


RENDERED = {
    "started": lambda: backup_blocks.backup_started(record(label="pre-deploy")),
    "started_by_scheduler": lambda: backup_blocks.backup_started(record(actor="scheduler")),
    "progress_snapshot": lambda: backup_blocks.backup_progress(
        record(), Progress("1a2b3c4d", "app", "snapshot", 0)
    ),
    "progress_dumping": lambda: backup_blocks.backup_progress(
        record(), Progress("1a2b3c4d", "app", "dumping", 5 * 1024 * 1024)
    ),
    "progress_unknown_stage": lambda: backup_blocks.backup_progress(
        record(), Progress("1a2b3c4d", "app", "uploading", 1)
    ),
    "succeeded": lambda: backup_blocks.backup_result(succeeded()),
    "succeeded_prisma": lambda: backup_blocks.backup_result(
        succeeded(
            manifest={
                "artifact": "x.dump.zst",
                "row_counts": {"public._prisma_migrations": 3},
                "prisma_migration": {"migration_name": "20240101_init"},
            }
        )
    ),
    "succeeded_through_pooler": lambda: backup_blocks.backup_result(
        succeeded(
            manifest={
                "artifact": "x.dump.zst",
                "row_counts": {"public.users": 3},
                "row_counts_snapshot": "separate",
                "connection_warnings": [
                    pooler_advice("app", NEON_POOLER_URL, "neon"),
                ],
            }
        )
    ),
    "succeeded_no_manifest": lambda: backup_blocks.backup_result(
        succeeded(manifest=None, sha256=None)
    ),
    "failed": lambda: backup_blocks.backup_result(failed()),
    "failed_without_error": lambda: backup_blocks.backup_result(failed(error=None)),
    "status_empty_list": lambda: status_blocks.status_message([]),
    "status_one": lambda: status_blocks.status_message([status()]),
    "status_running": lambda: status_blocks.status_message(
        [status(running=record(actor="cli:bob"))]
    ),
    "status_drills": lambda: status_blocks.status_message([status(drills=DRILLS)]),
    "log_empty": lambda: status_blocks.log_message([], INTACT),
    "log_one": lambda: status_blocks.log_message([incident(1)], INTACT),
    "help": status_blocks.help_message,
    "usage_error": lambda: kit.usage_error("Unknown option `--x`.", usage_of("now")),
    "usage_error_without_usage": lambda: kit.usage_error("Something is off.", ""),
    "notice": lambda: kit.notice("Restores need two approvals."),
    "started_ack": lambda: backup_blocks.started_ack(record(), "C0BACKUPS", NOW),
}


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_renderer_output_is_accepted_by_slack(name: str) -> None:
    assert_slack_accepts(RENDERED[name]())


# --- stress: long content stays within limits ------------------------------------------------


def test_status_for_60_databases_fits_50_blocks_and_points_to_the_rest() -> None:
    statuses = [
        status(
            f"db{i:02d}",
            last_failure=failed(error="connection refused " * 20, database=f"db{i:02d}"),
            warnings=["No verified backup yet.", "The latest backup attempt failed: x" * 50],
        )
        for i in range(60)
    ]

    msg = status_blocks.status_message(statuses)

    assert_slack_accepts(msg)
    assert len(msg.blocks) <= 50
    last = msg.blocks[-1]
    assert last["type"] == "context"
    assert "more database(s)" in last["elements"][0]["text"]
    shown_names = [n for n in (f"db{i:02d}" for i in range(60)) if f"*{n}*" in shown(msg)]
    rest = 60 - len(shown_names)
    assert rest > 0
    assert last["elements"][0]["text"].startswith(f"{rest} more database(s)")
    assert "60 of 60 database(s) need attention" in msg.text


def test_status_for_60_healthy_databases_fits_50_blocks() -> None:
    statuses = [
        status(f"db{i:02d}", last_success=succeeded(database=f"db{i:02d}"), kept=7)
        for i in range(60)
    ]

    msg = status_blocks.status_message(statuses)

    assert_slack_accepts(msg)
    assert len(msg.blocks) <= 50
    assert "more database(s)" in msg.blocks[-1]["elements"][0]["text"]
    assert "All 60 database(s) have a recent verified backup." in msg.text


def test_status_for_few_databases_shows_all_without_overflow_note() -> None:
    msg = status_blocks.status_message([status("app"), status("billing")])

    assert_slack_accepts(msg)
    assert "*app*" in shown(msg)
    assert "*billing*" in shown(msg)
    assert "more database(s)" not in shown(msg)


def test_log_of_50_incidents_with_2000_char_details_fits_limits() -> None:
    incidents = [
        incident(n, outcome="failed", details={"error": f"E{n} " + "x" * 2000}) for n in range(50)
    ]

    msg = status_blocks.log_message(incidents, INTACT)

    assert_slack_accepts(msg)
    assert "last 50 record(s)" in msg.text
    body = shown(msg)
    for n in range(50):
        assert f"id `{n:08x}`" in body


def test_log_shows_reason_when_there_is_no_error() -> None:
    msg = status_blocks.log_message(
        [incident(1, outcome="refused", details={"reason": "not approver"})], INTACT
    )

    assert_slack_accepts(msg)
    assert "not approver" in shown(msg)
    assert "*backup*" in shown(msg)


def test_connection_warnings_of_a_backup_are_escaped() -> None:
    hostile = "app is reached through <!channel> & <https://evil.example|a pooler>"
    msg = backup_blocks.backup_result(
        succeeded(manifest={"artifact": "a.dump.zst", "connection_warnings": [hostile]})
    )

    blocks = json.dumps(msg.blocks)
    assert "<!channel>" not in blocks and "<https://" not in blocks
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|a pooler&gt;" in blocks
    assert f"Warning: {esc(hostile)}" in msg.as_kwargs()["text"]


def test_failed_backup_with_10000_char_error_is_clipped_to_limits() -> None:
    error = "FATAL: " + "y" * 10_000

    msg = backup_blocks.backup_result(failed(error=error))

    assert_slack_accepts(msg)
    assert "FATAL: yyyy" in shown(msg)
    assert "…" in shown(msg)


def test_succeeded_backup_with_500_table_manifest_fits_limits() -> None:
    counts = {f"public.table_{i:03d}": i * 10 for i in range(500)}

    msg = backup_blocks.backup_result(
        succeeded(manifest={"artifact": "a.dump.zst", "row_counts": counts})
    )

    assert_slack_accepts(msg)
    assert f"500 / {sum(counts.values()):,}" in shown(msg)


def test_status_with_very_long_failure_error_fits_limits() -> None:
    bad = failed(error="z" * 10_000)

    msg = status_blocks.status_message(
        [status(last_failure=bad, warnings=[f"The latest backup attempt failed: {bad.error}"])]
    )

    assert_slack_accepts(msg)


# --- content ---------------------------------------------------------------------------------


def test_succeeded_message_mentions_size_id_and_verification() -> None:
    msg = backup_blocks.backup_result(succeeded())

    assert "1.5 MB" in msg.text
    assert "1a2b3c4d" in msg.text
    body = shown(msg)
    assert "1.5 MB" in body
    assert "raw 10.0 MB" in body
    assert "`1a2b3c4d`" in body
    assert "verified" in body
    assert "succeeded" in body
    assert "2 / 3,520" in body
    assert "pg_restore" in body


def test_succeeded_message_names_prisma_migration_when_present() -> None:
    manifest = {"row_counts": {}, "prisma_migration": {"migration_name": "20240101_init"}}

    msg = backup_blocks.backup_result(succeeded(manifest=manifest))

    assert "`20240101_init`" in shown(msg)


def test_failed_message_shows_the_error_text() -> None:
    msg = backup_blocks.backup_result(failed(error="The server at h:5432 refused the password."))

    assert "refused the password" in msg.text
    assert "refused the password" in shown(msg)
    assert "failed" in shown(msg)
    assert "nothing was kept" in shown(msg)


def test_failed_message_without_error_says_it_did_not_finish() -> None:
    msg = backup_blocks.backup_result(failed(error=None))

    assert "did not finish" in shown(msg)


def test_status_for_database_without_backup_says_no_verified_backup() -> None:
    warning = say("No verified backup yet. Run {cmd}.", cmd=Command("now", "app"))

    msg = status_blocks.status_message([status(warnings=[warning])])

    assert_slack_accepts(msg)
    assert "No verified backup yet. Run `/backup now app`." in shown(msg)
    assert ":warning:" in shown(msg)
    assert "1 of 1 database(s) need attention: app." in msg.text


def test_status_shows_running_backup_and_its_actor() -> None:
    msg = status_blocks.status_message([status(running=record(actor="U0BOB"))])

    assert "Running now" in shown(msg)
    assert "<@U0BOB>" in shown(msg)


def test_started_message_names_database_actor_and_label() -> None:
    msg = backup_blocks.backup_started(record(label="pre-deploy"))

    assert "<@U0ALICE>" in shown(msg)
    assert "`app`" in shown(msg)
    assert "label `pre-deploy`" in shown(msg)
    assert "1a2b3c4d" in msg.text


def test_non_slack_actor_is_shown_as_code_not_mention() -> None:
    msg = backup_blocks.backup_started(record(actor="cli:root"))

    assert "`cli:root`" in shown(msg)
    assert "<@cli:root>" not in shown(msg)


def test_progress_message_describes_stage_and_bytes() -> None:
    msg = backup_blocks.backup_progress(
        record(), Progress("1a2b3c4d", "app", "dumping", 5 * 1024**2)
    )

    assert "dumping and compressing" in msg.text
    assert "5.0 MB so far" in msg.text


def test_usage_error_shows_each_usage_line() -> None:
    usage = usage_of("*")

    msg = kit.usage_error("`stats` is not a /backup command.", usage)

    body = shown(msg)
    assert "`stats` is not a /backup command." in body
    assert "*Usage*" in body
    for line in usage.splitlines():
        assert f"`{line}`" in body
        assert line in msg.text


def test_usage_error_without_usage_shows_only_the_problem() -> None:
    msg = kit.usage_error("Something is off.", "")

    assert msg.text == "Something is off."
    assert "Usage" not in shown(msg)


def test_help_lists_every_subcommand_usage_and_summary() -> None:
    msg = status_blocks.help_message()

    for s in specs(Surface.SLACK):
        assert s.usage() in shown(msg)
        assert esc(s.summary) in shown(msg)  # "<db>" shown as text, not as markup
        assert s.usage() in msg.text


def test_started_ack_links_the_channel() -> None:
    msg = backup_blocks.started_ack(record(), "C0BACKUPS", NOW)

    assert "<#C0BACKUPS>" in shown(msg)
    assert "#C0BACKUPS" in msg.text  # the fallback has no markup
    assert "2024-05-01 12:00 UTC" in msg.text


def test_empty_log_says_so() -> None:
    msg = status_blocks.log_message([], INTACT)

    assert msg.text == "The incident log is empty."
    assert shown(msg) == "The incident log is empty."
