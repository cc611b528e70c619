"""Golden files of the Slack renderer: every message kind, from fixed result objects, as
the JSON `chat.postMessage` receives (fallback text escaped, blocks).

A change to a message shows up here as a diff to review. After an intended change,
regenerate with `BACKUPBOT_UPDATE_GOLDEN=1 .venv/bin/python -m pytest
tests/test_slack_golden.py` and commit the files under `tests/golden/slack/`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from backupbot.bot.slack import kit
from backupbot.bot.slack.blocks import backup as backup_blocks
from backupbot.bot.slack.blocks import drill as drill_blocks
from backupbot.bot.slack.blocks import migrations as migrations_blocks
from backupbot.bot.slack.blocks import note as note_blocks
from backupbot.bot.slack.blocks import restore as restore_blocks
from backupbot.bot.slack.kit import Message
from backupbot.commands.approvals import Refusal
from backupbot.commands.schema_compare import SchemaDifference
from backupbot.phrases import Actor, Command, Name, say
from backupbot.storage.operation_notes import OperationNote
from tests.test_blocks import RENDERED, succeeded
from tests.test_cli_golden import (
    DRILL_PASSED,
    DRILL_SCHEMA_FAILED,
    PRISMA_RESULT,
    SCHEMA_DIFFERENCES,
    SCHEMA_ERROR,
    prisma_view,
)
from tests.test_restore_blocks import ALL_STATUSES, NOW, in_state, preview

GOLDEN = Path(__file__).parent / "golden" / "slack"
SCHEMA_FINGERPRINT: dict[str, Any] = {
    "format": "backupbot-schema/1",
    "tables": {
        "public.orders": {
            "columns": {"id": {"type": "integer", "not_null": True, "default": None}},
            "indexes": {"orders_customer_idx": "CREATE INDEX …", "orders_at_idx": "CREATE …"},
            "constraints": {"orders_pkey": "PRIMARY KEY (id)"},
            "triggers": {},
        }
    },
    "sequences": {"public.orders_id_seq": {"last_value": 120, "increment": 1}},
    "views": {},
    "functions": {"public.f(integer)": "sha256:0"},
    "extensions": {"plpgsql": "1.0"},
}
UPDATE = os.environ.get("BACKUPBOT_UPDATE_GOLDEN") == "1"

NOTE = OperationNote(
    id="n1a2b3c4d",
    database="app",
    kind="staging-restore",
    text="pg_restore of backup 1a2b into staging <!channel>\n*counts* match & <https://evil|ok>",
    author="UALICE",
    created_at=NOW,
    channel="C0BACKUPS",
    message_ts="1764666000.000100",
)

KINDS: dict[str, Callable[[], Message]] = {
    **RENDERED,
    **{
        f"restore_{status}": (lambda s=status: restore_blocks.restore_message(in_state(s), NOW))
        for status in ALL_STATUSES
    },
    "restore_report_succeeded": lambda: restore_blocks.restore_report(in_state("succeeded")),
    "restore_report_failed": lambda: restore_blocks.restore_report(in_state("failed")),
    "restore_report_schema_failed": lambda: restore_blocks.restore_report(
        in_state(
            "failed",
            error=SCHEMA_ERROR,
            result={
                "failed_stage": "verify",
                "target_state": "app_copy is restored but does not match the backup",
                "mismatches": [{"table": "public.orders", "expected": 30, "actual": 29}],
                "schema_differences": [
                    d.record()
                    for d in (
                        *SCHEMA_DIFFERENCES,
                        SchemaDifference("trigger", "<!channel> on public.orders", "missing"),
                    )
                ],
                "schema_differences_total": 12,
            },
        )
    ),
    "restore_report_schema_ok": lambda: restore_blocks.restore_report(
        in_state("succeeded", result={**in_state("succeeded").result, "schema": "ok"})
    ),
    "succeeded_with_schema": lambda: backup_blocks.backup_result(
        succeeded(manifest={**succeeded().manifest, "schema": SCHEMA_FINGERPRINT})
    ),
    "drill_passed_schema_ok": lambda: drill_blocks.drill_message(DRILL_PASSED, NOW),
    "drill_failed_schema": lambda: drill_blocks.drill_message(DRILL_SCHEMA_FAILED, NOW),
    "restore_refused": lambda: restore_blocks.refused(
        Refusal(
            "decided",
            say(
                "This restore request was already denied by {who}; ask again with {cmd}.",
                who=Actor("UBOB"),
                cmd=Command("restore", "app", "latest"),
            ),
        )
    ),
    "restore_requested_ack": lambda: restore_blocks.requested_ack(in_state("pending"), "C0BACKUPS"),
    "note_staging_restore": lambda: note_blocks.note_message(NOTE),
    "note_confirmed": lambda: note_blocks.note_message(
        replace(NOTE, confirmed_by="UBOB", confirmed_at=NOW)
    ),
    "note_restore": lambda: note_blocks.note_message(
        replace(NOTE, kind="restore", text="Restored app from the Neon dashboard to 14:00")
    ),
    "note_ack": lambda: note_blocks.note_ack(NOTE),
    "migrations": lambda: migrations_blocks.migrations_message(prisma_view()),
    "migrations_none": lambda: migrations_blocks.migrations_message(
        dataclasses.replace(prisma_view(), rows=None)
    ),
    "restore_pending_prisma_ahead": lambda: restore_blocks.restore_message(
        in_state(
            "pending",
            preview={**preview(), "prisma_ahead": ["20240201_add_badges", "20240202_<!here>"]},
        ),
        NOW,
    ),
    "restore_report_prisma": lambda: restore_blocks.restore_report(
        in_state("succeeded", result={**in_state("succeeded").result, "prisma": PRISMA_RESULT})
    ),
    "hostile_usage_error": lambda: kit.usage_error(
        say("There is no backup {ref} of {db}.", ref=Name("<!channel>"), db=Name("app")),
        "/backup restore DB",
    ),
}


def _as_posted(message: Message) -> dict[str, Any]:
    return json.loads(json.dumps(message.as_kwargs()))


@pytest.mark.parametrize("name", sorted(KINDS))
def test_slack_message_matches_its_golden_file(name: str) -> None:
    path = GOLDEN / f"{name}.json"
    posted = _as_posted(KINDS[name]())
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(posted, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    assert path.exists(), f"no golden file {path}: run with BACKUPBOT_UPDATE_GOLDEN=1 once"
    assert posted == json.loads(path.read_text()), f"{name} changed; see the module docstring"


def test_every_golden_file_belongs_to_a_message_kind() -> None:
    stale = sorted(p.stem for p in GOLDEN.glob("*.json") if p.stem not in KINDS)
    assert stale == [], f"golden files without a message kind: {stale}"
