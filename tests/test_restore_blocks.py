"""Block Kit for restores: every state says what happened, and stays within Slack's limits."""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backupbot.bot.slack.blocks import restore as restore_blocks
from backupbot.bot.slack.blocks.restore import (
    ACTIONS_BLOCK,
    APPROVE_ACTION,
    CANCEL_ACTION,
    DENY_ACTION,
    break_glass_notice,
    refused,
    requested_ack,
    restore_message,
    restore_report,
    stage_note,
)
from backupbot.bot.slack.kit import Message
from backupbot.commands.approvals import Refusal
from backupbot.commands.restore_model import RestoreProgress
from backupbot.devkit.slack_standin import MAX_MESSAGE_TEXT, block_kit_errors
from backupbot.storage.restores import (
    CANCELLED,
    DENIED,
    EXPIRED,
    FAILED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    RestoreRecord,
)
from tests.restore_records import restore_record

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SHA = "ab" * 32
BACKUP_COUNTS = {"users": 1200, "orders": 54321, "audit_log": 999_999}
TARGET_COUNTS = {"users": 1300, "orders": 60000, "audit_log": 1_000_500, "sessions": 10}
SAFETY_ID = "5e6f7a8b"
ALL_STATUSES = (PENDING, RUNNING, SUCCEEDED, FAILED, DENIED, CANCELLED, EXPIRED)


def preview() -> dict[str, Any]:
    """The preview as `RestorePlanner.new_restore` stores it."""
    return {
        "backup": {
            "id": "1a2b3c4d",
            "started_at": (NOW - timedelta(hours=2)).isoformat(),
            "stored_size": 1536 * 1024,
            "raw_size": 10 * 1024 * 1024,
            "sha256": SHA,
            "sha256_verified": True,
            "label": None,
            "server_version": "16.2",
            "row_counts": dict(BACKUP_COUNTS),
            "prisma": {
                "migration_name": "20240401120000_add_orders",
                "finished_at": "2024-04-01T12:00:00+00:00",
                "checksum": "c" * 64,
            },
        },
        "source": {"name": "app", "where": "db.example.com:5432/app"},
        "target": {
            "exists": True,
            "size_bytes": 50 * 1024 * 1024,
            "row_counts": dict(TARGET_COUNTS),
            "prisma": {
                "migration_name": "20240415090000_add_sessions",
                "finished_at": "2024-04-15T09:00:00+00:00",
                "checksum": "d" * 64,
            },
            "where": "db.example.com:5432/app_copy",
            "configured_as": None,
        },
        "rto_minutes": 30,
    }


BASE = restore_record(
    NOW - timedelta(minutes=5), expires_at=NOW + timedelta(minutes=25), preview=preview()
)

SUCCESS_RESULT: dict[str, Any] = {
    "timings": {"download": 12.4, "safety": 30.0, "restore": 600.2, "verify": 111.6},
    "total_seconds": 754.2,
    "rto_minutes": 30,
    "within_rto": True,
    "tables": 3,
    "rows": sum(BACKUP_COUNTS.values()),
    "extra_tables": ["sessions"],
    "safety_backup_id": SAFETY_ID,
    "jobs": 1,
    "target_state": "restored and verified",
}
FAIL_ERROR = "pg_restore exited with code 1: relation orders already exists."
FAIL_STATE = f"app_copy is partially restored; its previous state is in safety backup {SAFETY_ID}"
FAIL_RESULT: dict[str, Any] = {
    "timings": {"download": 12.4, "safety": 30.0},
    "total_seconds": 80.0,
    "failed_stage": "restore",
    "target_state": FAIL_STATE,
    "safety_backup_id": SAFETY_ID,
}
MISMATCH_RESULT: dict[str, Any] = {
    **FAIL_RESULT,
    "failed_stage": "verify",
    "target_state": "app_copy is restored but does not match the backup",
    "mismatches": [
        {"table": "orders", "expected": 54321, "actual": 54000},
        {"table": "users", "expected": 1200, "actual": None},
    ],
}


def record(**overrides: Any) -> RestoreRecord:
    overrides.setdefault("preview", preview())
    return dataclasses.replace(BASE, **overrides)


def in_state(status: str, **overrides: Any) -> RestoreRecord:
    """A record as the service leaves it in `status`."""
    decided_at = NOW - timedelta(minutes=1)
    values: dict[str, Any] = {"status": status}
    if status in (RUNNING, SUCCEEDED, FAILED):
        values.update(
            decided_by="UBOB",
            decided_at=decided_at,
            approval_count=1,
            approvals=[{"user": "UBOB", "at": decided_at.isoformat()}],
            started_at=decided_at,
            stage="restore",
            heartbeat_at=NOW,
        )
    if status == DENIED:
        values.update(decided_by="UBOB", decided_at=decided_at)
    if status == CANCELLED:
        values.update(decided_by="UALICE", decided_at=decided_at)
    if status == EXPIRED:
        values.update(decided_by="backupbot", decided_at=BASE.expires_at)
    if status == SUCCEEDED:
        values.update(finished_at=NOW, result=copy.deepcopy(SUCCESS_RESULT), stage="verify")
    if status == FAILED:
        values.update(finished_at=NOW, result=copy.deepcopy(FAIL_RESULT), error=FAIL_ERROR)
    values.update(overrides)
    return record(**values)


def strings(node: Any) -> list[str]:
    """Every string anywhere in a Block Kit structure."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return []


def rendered(message: Message) -> str:
    return "\n".join([message.text, *strings(message.blocks)])


def section_with(message: Message, needle: str) -> str:
    texts = [b["text"]["text"] for b in message.blocks if b["type"] == "section" and "text" in b]
    found = [t for t in texts if needle in t]
    assert found, f"no section contains {needle!r}: {texts}"
    return found[0]


def field_texts(message: Message) -> list[str]:
    return [f["text"] for b in message.blocks for f in b.get("fields", [])]


def assert_valid(message: Message) -> None:
    assert block_kit_errors(message.blocks) == []
    assert 0 < len(message.text) <= MAX_MESSAGE_TEXT


# -- the pending request ----------------------------------------------------------------


def pending_buttons() -> dict[str, dict[str, Any]]:
    message = restore_message(record(), NOW)
    [actions] = [b for b in message.blocks if b.get("block_id") == ACTIONS_BLOCK]
    assert actions["type"] == "actions"
    return {e["action_id"]: e for e in actions["elements"]}


def test_pending_request_offers_approve_deny_and_cancel_buttons() -> None:
    buttons = pending_buttons()
    assert list(buttons) == [APPROVE_ACTION, DENY_ACTION, CANCEL_ACTION]
    assert [b["text"]["text"] for b in buttons.values()] == ["Approve", "Deny", "Cancel"]
    assert all(b["type"] == "button" for b in buttons.values())


def test_pending_approve_is_primary_and_deny_is_danger_both_with_confirm_dialogs() -> None:
    buttons = pending_buttons()
    approve, deny, cancel = buttons[APPROVE_ACTION], buttons[DENY_ACTION], buttons[CANCEL_ACTION]
    assert approve["style"] == "primary"
    assert deny["style"] == "danger"
    assert "style" not in cancel
    for button in (approve, deny):
        confirm = button["confirm"]
        assert {"title", "text", "confirm", "deny"} <= set(confirm)
        assert confirm["confirm"]["text"] == button["text"]["text"]
    approve_text = approve["confirm"]["text"]["text"]
    assert "`1a2b3c4d`" in approve_text and "`app`" in approve_text
    assert "overwrites `app_copy` after a safety backup" in approve_text


def test_confirm_dialog_for_a_new_target_does_not_claim_an_overwrite() -> None:
    target = {**BASE.preview["target"], "exists": False, "row_counts": None, "size_bytes": 0}
    message = restore_message(record(preview={**BASE.preview, "target": target}), NOW)
    [actions] = [b for b in message.blocks if b.get("block_id") == ACTIONS_BLOCK]
    approve_text = actions["elements"][0]["confirm"]["text"]["text"]
    assert "overwrite" not in approve_text
    assert "restores into `app_copy`" in approve_text


def test_every_pending_button_value_is_exactly_the_restore_id() -> None:
    assert [b["value"] for b in pending_buttons().values()] == [BASE.id] * 3


def test_pending_request_message_is_within_block_kit_limits() -> None:
    assert_valid(restore_message(record(), NOW))


def test_pending_request_shows_approvals_needed_and_expiry() -> None:
    message = restore_message(
        record(
            required_approvals=2,
            approval_count=1,
            approvals=[{"user": "UBOB", "at": NOW.isoformat()}],
        ),
        NOW,
    )
    text = rendered(message)
    assert "1 of 2 (<@UBOB>)" in text
    assert "expires 2024-05-01 12:25 UTC" in text
    assert "the requester cannot approve" in text
    assert "waiting for approval" in message.text


def test_request_message_names_requester_reason_source_and_target() -> None:
    message = restore_message(record(), NOW)
    title = section_with(message, "Restore of")
    assert "`app`" in title and "`app_copy`" in title
    assert "<@UALICE>" in title
    assert "customer rows deleted by a bad migration" in title
    fields = "\n".join(field_texts(message))
    assert "`1a2b3c4d`" in fields
    assert "2024-05-01 10:00 UTC (2 h ago)" in fields
    assert "1.5 MB" in fields
    assert "yes · `abababababab…`" in fields
    assert "`db.example.com:5432/app`" in fields
    assert "`db.example.com:5432/app_copy`" in fields


def test_request_without_reason_says_so() -> None:
    assert "no reason given" in rendered(restore_message(record(reason=None), NOW))


# -- decided states ---------------------------------------------------------------------

DECIDED = (EXPIRED, DENIED, CANCELLED, RUNNING, SUCCEEDED, FAILED)


@pytest.mark.parametrize("status", DECIDED)
def test_decided_request_has_no_buttons(status: str) -> None:
    message = restore_message(in_state(status), NOW)
    assert all(b["type"] != "actions" for b in message.blocks)
    assert all(b.get("block_id") != ACTIONS_BLOCK for b in message.blocks)
    assert "button" not in strings(message.blocks)
    assert_valid(message)


@pytest.mark.parametrize("status", DECIDED)
def test_decided_request_keeps_its_body(status: str) -> None:
    message = restore_message(in_state(status), NOW)
    section_with(message, "customer rows deleted by a bad migration")
    section_with(message, "Will be overwritten")
    section_with(message, "*Plan:*")


def test_denied_request_names_who_denied_and_when() -> None:
    message = restore_message(in_state(DENIED), NOW)
    status = section_with(message, "*Denied*")
    assert "<@UBOB> at 2024-05-01 11:59 UTC" in status
    assert "Nothing was restored" in status


def test_cancelled_request_names_who_cancelled_and_when() -> None:
    message = restore_message(in_state(CANCELLED), NOW)
    status = section_with(message, "*Cancelled*")
    assert "<@UALICE> at 2024-05-01 11:59 UTC" in status
    assert "Nothing was restored" in status


def test_expired_request_says_expired_and_when() -> None:
    message = restore_message(in_state(EXPIRED), NOW)
    status = section_with(message, "*Expired*")
    assert "2024-05-01 12:25 UTC" in status
    assert "Nothing was restored" in status


def test_running_request_names_approver_and_current_stage() -> None:
    message = restore_message(in_state(RUNNING), NOW)
    status = section_with(message, "*restoring*")
    assert "Approved by <@UBOB> at 2024-05-01 11:59 UTC" in status
    assert "running pg_restore" in status


def test_running_request_follows_live_progress_stage() -> None:
    progress = RestoreProgress(restore_id=BASE.id, stage="verify", timings={"restore": 60.0})
    status = section_with(restore_message(in_state(RUNNING), NOW, progress), "*restoring*")
    assert "counting rows in every table" in status


def test_succeeded_request_shows_recovery_time_against_rto() -> None:
    message = restore_message(in_state(SUCCEEDED), NOW)
    status = section_with(message, "*Restored and verified*")
    assert "Recovered in 12 min 34 s (RTO target 30 min)" in status
    assert "over the target" not in status
    assert "Approved by <@UBOB>" in status
    assert f"safety backup `{SAFETY_ID}`" in status
    assert "succeeded" in message.text


def test_succeeded_over_rto_is_flagged() -> None:
    result = {**SUCCESS_RESULT, "total_seconds": 2400.0, "within_rto": False}
    message = restore_message(in_state(SUCCEEDED, result=result), NOW)
    status = section_with(message, "*Restored and verified*")
    assert "Recovered in 40 min 0 s (RTO target 30 min) — *over the target*" in status


def test_failed_request_shows_error_target_state_and_safety_backup() -> None:
    message = restore_message(in_state(FAILED), NOW)
    status = section_with(message, "*Restore failed*")
    assert "during restore" in status
    assert FAIL_ERROR in status
    assert f"*Target:* {FAIL_STATE}" in status
    assert f"safety backup `{SAFETY_ID}`" in status
    assert FAIL_ERROR in message.text


def test_multi_approval_run_lists_all_approvers() -> None:
    approvals = [{"user": u, "at": NOW.isoformat()} for u in ("UBOB", "UCAROL")]
    message = restore_message(
        in_state(RUNNING, required_approvals=2, approval_count=2, approvals=approvals), NOW
    )
    assert "2 of 2 (<@UBOB>, <@UCAROL>)" in section_with(message, "*restoring*")


# -- what gets overwritten --------------------------------------------------------------


def test_existing_target_lists_overwrite_size_tables_and_row_counts() -> None:
    text = section_with(restore_message(record(), NOW), "Will be overwritten")
    assert "`app_copy`, 50.0 MB, 4 table(s)" in text
    lines = [line for line in text.splitlines() if line.startswith("•")]
    assert lines == [
        "• `audit_log` 1,000,500 → 999,999",
        "• `orders` 60,000 → 54,321",
        "• `users` 1,300 → 1,200",
        "• `sessions` 10 → not in backup",
    ]
    assert "more table(s)" not in text


def test_table_only_in_backup_shows_a_dash_for_now() -> None:
    p = preview()
    p["backup"]["row_counts"]["invoices"] = 5
    text = section_with(restore_message(record(preview=p), NOW), "Will be overwritten")
    assert "• `invoices` — → 5" in text


def test_target_with_500_tables_is_capped_and_within_limits() -> None:
    p = preview()
    names = [f"public.table_{i:03}_" + "x" * 100 for i in range(500)]
    p["target"]["row_counts"] = {n: i * 10 for i, n in enumerate(names)}
    p["backup"]["row_counts"] = {n: i * 10 + 1 for i, n in enumerate(names)}
    message = restore_message(record(preview=p), NOW)
    assert_valid(message)
    text = section_with(message, "Will be overwritten")
    assert "500 table(s)" in text
    bullets = [line for line in text.splitlines() if line.startswith("•")]
    assert len(bullets) == restore_blocks.MAX_TABLE_LINES
    assert bullets[0] == f"• `{names[499]}` 4,990 → 4,991"
    assert f"…and {500 - restore_blocks.MAX_TABLE_LINES} more table(s)" in text


def test_missing_target_will_be_created_and_nothing_overwritten() -> None:
    p = preview()
    p["target"].update(exists=False, size_bytes=0, row_counts=None, prisma=None)
    message = restore_message(record(mode="new", preview=p), NOW)
    text = section_with(message, "does not exist")
    assert "`app_copy` does not exist; it will be created. Nothing is overwritten." in text
    assert "Will be overwritten" not in rendered(message)
    plan = section_with(message, "*Plan:*")
    assert "create the target" in plan
    assert "safety backup" not in plan and "--clean" not in plan


def test_existing_empty_target_says_nothing_is_overwritten() -> None:
    p = preview()
    p["target"].update(row_counts={}, size_bytes=8 * 1024 * 1024)
    text = section_with(restore_message(record(preview=p), NOW), "has no tables")
    assert "nothing is overwritten" in text


def test_plan_for_existing_target_takes_safety_backup_and_cleans() -> None:
    plan = section_with(restore_message(record(), NOW), "*Plan:*")
    assert "safety backup of the target" in plan
    assert "pg_restore --clean" in plan
    assert "verify row counts of 3 table(s)" in plan


def test_target_that_is_a_configured_database_is_warned_about() -> None:
    p = preview()
    p["target"]["configured_as"] = "billing"
    text = section_with(restore_message(record(preview=p), NOW), "configured database")
    assert ":rotating_light:" in text
    assert "`billing`" in text


def test_no_configured_database_warning_when_target_is_not_configured() -> None:
    assert "configured database" not in rendered(restore_message(record(), NOW))


def test_prisma_migrations_of_backup_and_target_are_shown() -> None:
    text = section_with(restore_message(record(), NOW), "Prisma migration")
    assert "backup `20240401120000_add_orders`" in text
    assert "target now `20240415090000_add_sessions`" in text
    assert "(same)" not in text


def test_same_prisma_migration_is_marked_same() -> None:
    p = preview()
    p["target"]["prisma"] = dict(p["backup"]["prisma"])
    text = section_with(restore_message(record(preview=p), NOW), "Prisma migration")
    assert "(same)" in text


def test_prisma_missing_on_one_side_says_none() -> None:
    p = preview()
    p["target"]["prisma"] = None
    text = section_with(restore_message(record(preview=p), NOW), "Prisma migration")
    assert "target now `none`" in text


# -- huge inputs ------------------------------------------------------------------------


def huge_record(status: str) -> RestoreRecord:
    p = preview()
    names = [f"schema_{i:03}." + "very_long_table_name_" * 5 + str(i) for i in range(500)]
    p["target"]["row_counts"] = {n: 10**9 + i for i, n in enumerate(names)}
    p["backup"]["row_counts"] = {n: 10**9 - i for i, n in enumerate(names)}
    p["backup"]["label"] = "L" * 200
    mismatches = [
        {"table": n, "expected": 10**9 - i, "actual": None if i % 2 else i}
        for i, n in enumerate(names[:200])
    ]
    result: dict[str, Any] = {}
    if status == SUCCEEDED:
        result = {**SUCCESS_RESULT, "tables": 500, "extra_tables": names}
    if status == FAILED:
        result = {**MISMATCH_RESULT, "mismatches": mismatches}
    return in_state(
        status,
        reason="R" * 500,
        preview=p,
        result=result,
        error=("E" * 3000) if status == FAILED else None,
    )


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_huge_request_message_stays_within_block_kit_limits(status: str) -> None:
    message = restore_message(huge_record(status), NOW)
    assert_valid(message)
    assert "R" * 500 in rendered(message)


@pytest.mark.parametrize("status", [SUCCEEDED, FAILED])
def test_huge_report_stays_within_block_kit_limits(status: str) -> None:
    assert_valid(restore_report(huge_record(status)))


def test_huge_break_glass_notice_stays_within_block_kit_limits() -> None:
    r = dataclasses.replace(huge_record(SUCCEEDED), break_glass=True, decided_by="UALICE")
    assert_valid(break_glass_notice(r))


# -- no secrets -------------------------------------------------------------------------


def every_rendering() -> list[Message]:
    messages: list[Message] = []
    for status in ALL_STATUSES:
        r = in_state(status)
        messages.append(restore_message(r, NOW))
        messages.append(break_glass_notice(dataclasses.replace(r, break_glass=True)))
        if status in (SUCCEEDED, FAILED):
            messages.append(restore_report(r))
    messages.append(restore_report(in_state(FAILED, result=copy.deepcopy(MISMATCH_RESULT))))
    messages.append(requested_ack(record(), "C0BACKUPS"))
    messages.append(stage_note("safety", 30.0, SAFETY_ID))
    return messages


def test_renderings_never_include_a_connection_url() -> None:
    for message in every_rendering():
        text = rendered(message)
        assert "postgresql://" not in text
        assert "postgres://" not in text


def test_renderings_show_only_host_port_and_database() -> None:
    text = "\n".join(rendered(m) for m in every_rendering())
    assert "db.example.com:5432/app" in text
    assert "@db.example.com" not in text


def test_every_rendering_is_within_block_kit_limits() -> None:
    for message in every_rendering():
        assert_valid(message)


# -- the report -------------------------------------------------------------------------


def test_success_report_lists_each_stage_duration_and_total() -> None:
    report = restore_report(in_state(SUCCEEDED))
    assert field_texts(report) == [
        "*Download*\n12 s",
        "*Safety*\n30 s",
        "*Restore*\n10 min 0 s",
        "*Verify*\n1 min 52 s",
        "*Total*\n12 min 34 s",
    ]
    head = section_with(report, "Recovered in")
    assert "Recovered in 12 min 34 s (RTO target 30 min)" in head
    assert "3 table(s), 1,055,520 row(s) match the backup" in head
    assert_valid(report)


def test_success_report_lists_tables_not_in_the_backup() -> None:
    text = rendered(restore_report(in_state(SUCCEEDED)))
    assert "not in the backup (left as they were): `sessions`" in text


def test_failure_report_lists_mismatched_tables_with_expected_and_actual() -> None:
    report = restore_report(in_state(FAILED, result=copy.deepcopy(MISMATCH_RESULT)))
    text = section_with(report, "*Target:*")
    assert "*Target:* app_copy is restored but does not match the backup" in text
    assert "• `orders`: 54,000 row(s), backup has 54,321" in text
    assert "• `users`: missing row(s), backup has 1,200" in text
    assert f"*Safety backup:* `{SAFETY_ID}`" in text
    assert "during verify" in section_with(report, "*Restore failed*")
    assert_valid(report)


def test_failure_report_shows_error_and_target_state() -> None:
    report = restore_report(in_state(FAILED))
    assert FAIL_ERROR in section_with(report, "*Restore failed*")
    assert FAIL_STATE in report.text
    assert "*Total*\n1 min 20 s" in field_texts(report)


def test_failure_report_without_safety_backup_does_not_mention_one() -> None:
    result = {**FAIL_RESULT, "safety_backup_id": None, "target_state": "app_copy was not touched"}
    report = restore_report(in_state(FAILED, result=result))
    assert "Safety backup" not in rendered(report)
    assert "app_copy was not touched" in section_with(report, "*Target:*")


# -- notes, refusals, acks, break-glass -------------------------------------------------


def test_break_glass_notice_names_who_ran_it() -> None:
    r = in_state(SUCCEEDED, break_glass=True, decided_by="UALICE", required_approvals=0)
    notice = break_glass_notice(r)
    head = notice.blocks[0]["text"]["text"]
    assert "Break-glass" in head
    assert "<@UALICE>" in head
    assert "2024-05-01 11:59 UTC" in head
    assert notice.text.startswith("Break-glass restore: ")
    assert "Break-glass run" in section_with(notice, "*Restored and verified*")
    assert_valid(notice)


def test_break_glass_request_title_says_no_approval() -> None:
    r = in_state(RUNNING, break_glass=True, decided_by="UALICE")
    title = section_with(restore_message(r, NOW), "Restore of")
    assert "(break-glass, no approval)" in title


def test_refusal_message_is_shown_to_the_clicker() -> None:
    message = refused(Refusal("self", "You asked for this restore, so you cannot approve it."))
    assert (
        "You asked for this restore, so you cannot approve it." in message.blocks[0]["text"]["text"]
    )
    assert_valid(message)


def test_requested_ack_names_channel_approvals_and_expiry() -> None:
    message = requested_ack(record(required_approvals=2), "C0BACKUPS")
    assert "`r0a1b2c3d`" in rendered(message)
    assert "<#C0BACKUPS>" in rendered(message)
    assert "needs 2 approval(s)" in message.text
    assert "2024-05-01 12:25 UTC" in message.text
    assert_valid(message)


def test_safety_stage_note_names_the_safety_backup() -> None:
    message = stage_note("safety", 30.0, SAFETY_ID)
    assert message.text == f"Safety backup of the target taken: backup `{SAFETY_ID}` (30 s)."
    assert_valid(message)


def test_other_stage_note_says_what_finished_and_how_long() -> None:
    assert stage_note("restore", 5.25).text == "pg_restore finished (5.2 s)."
