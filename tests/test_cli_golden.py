"""Golden files of every message the CLI prints: fixed result objects rendered by
`bot/cli/render/` and compared with `tests/cli_golden/<kind>.txt`.

Regenerate after an intended change with `BACKUPBOT_UPDATE_GOLDEN=1 pytest
tests/test_cli_golden.py`, then read the diff. Every rendering is also checked for
Slack markup, which a terminal must never show.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from backupbot.bot.cli.render import (
    backup,
    drill,
    log,
    migrations,
    note,
    render,
    restore,
    retention,
    rto,
    status,
)
from backupbot.commands.backup_progress import Progress
from backupbot.commands.drill_model import DrillStage
from backupbot.commands.migrations import MigrationsView
from backupbot.commands.restore_model import RestoreProgress
from backupbot.commands.retention_plan import (
    DatabasePolicy,
    FailedDeletion,
    RetentionPlan,
    RetentionReport,
    plan_retention,
)
from backupbot.commands.rto_report import RtoReport, rto_report
from backupbot.commands.schema_compare import SchemaDifference, differences_phrase
from backupbot.commands.status import (
    AlertSummary,
    BotStatus,
    ChecklistSummary,
    DatabaseStatus,
    DrillSummary,
    database_status,
)
from backupbot.commands.trends import Trend
from backupbot.errors import BackupAlreadyRunning, ConfigError, RestoreConflict, UsageError
from backupbot.phrases import Actor, Command, MessageLink, Name, say
from backupbot.settings import RetentionSettings
from backupbot.storage.drills import DrillRecord
from backupbot.storage.incident_chain import ChainCheck
from backupbot.storage.operation_notes import OperationNote
from backupbot.storage.prisma import Migration
from backupbot.storage.restores import RestoreRecord
from tests.restore_records import restore_record
from tests.test_blocks import NOW, failed, incident, succeeded
from tests.test_blocks import status as db_status

GOLDEN = Path(__file__).parent / "cli_golden"
UPDATE = os.environ.get("BACKUPBOT_UPDATE_GOLDEN") == "1"
MARKUP = re.compile(r"`|<@|<!|<#|\*|(?<![\w:]):[a-z][a-z0-9_+-]+:(?![\w/])")


def _lines(*lines: str | list[str]) -> str:
    out: list[str] = []
    for item in lines:
        out.extend(item if isinstance(item, list) else [item])
    return "\n".join(out) + "\n"


def _json(data: object) -> str:
    return json.dumps(data, indent=2) + "\n"


# -- phrases and errors --------------------------------------------------------------------


def phrases() -> str:
    commands = [
        Command("now", "app"),
        Command("now", "app", "--label", "pre deploy"),
        Command("restore", "app", "latest"),
        Command("restore"),
        Command("drill", "app"),
        Command("status"),
        Command("status", "app"),
        Command("retention", "app"),
        Command("log"),
        Command("log", "20"),
        Command("help"),
        Command("approve", "r0a1b2c3d"),  # no CLI form: stays as Slack says it
    ]
    facts = say(
        "{db} by {who} ({cli}, {bot}); see {link} and {bare}",
        db=Name("app"),
        who=Actor("U0ALICE"),
        cli=Actor("cli:alice"),
        bot=Actor("scheduler"),
        link=MessageLink("the request", "C0BACKUPS", "1714564800.000100", "https://x/p1"),
        bare=MessageLink("the alert", "C0BACKUPS", "1714564800.000200"),
    )
    return _lines([render(say("run {c}", c=c)) for c in commands], render(facts))


def errors() -> str:
    refused = [
        BackupAlreadyRunning("app", "1a2b3c4d", "U0ALICE", NOW, "dumping"),
        BackupAlreadyRunning("app", "1a2b3c4d", "cli:alice", NOW, "queued"),
        ConfigError(["databases[0].shedule: unknown key; did you mean 'schedule'?"], "x.yml"),
        RestoreConflict("app_copy", "r0a1b2c3d", "U0BOB", "pending"),
        UsageError(
            say(
                "{ref} is not a backup id (8 hex characters, as {status} shows) or {latest}.",
                ref=Name("zz"),
                status=Command("status"),
                latest=Name("latest"),
            )
        ),
    ]
    return _lines([f"error: {render(e.phrase)}" for e in refused])


# -- results -------------------------------------------------------------------------------

OK = succeeded(label="pre-deploy")


def backup_kinds() -> str:
    return _lines(
        backup.progress_line(Progress("1a2b3c4d", "app", "snapshot", 0)),
        backup.progress_line(Progress("1a2b3c4d", "app", "dumping", 5 * 1024 * 1024)),
        backup.result_line(OK),
        backup.result_line(failed(error="Could not reach the database server at db:5432")),
    )


def backup_json() -> str:
    return _json([backup.record_json(OK), backup.record_json(failed())])


def _restore_done(**overrides: object) -> RestoreRecord:
    result = {
        "timings": {"download": 1.2, "restore": 14.5, "verify": 2.0},
        "total_seconds": 17.7,
        "rto_minutes": 30,
        "within_rto": True,
        "tables": 12,
        "rows": 3520,
        "safety_backup_id": None,
        "target_state": "restored and verified",
    }
    return restore_record(
        NOW - timedelta(minutes=5),
        status="succeeded",
        break_glass=True,
        requester="cli:alice",
        started_at=NOW - timedelta(minutes=1),
        finished_at=NOW,
        result=result,
        **overrides,
    )


def _restore_failed() -> RestoreRecord:
    return restore_record(
        NOW - timedelta(minutes=5),
        status="failed",
        mode="in_place",
        target_db="app",
        break_glass=True,
        error="pg_restore failed: relation public.orders already exists",
        safety_backup_id="5e6f7a8b",
        result={"target_state": "left as pg_restore left it", "safety_backup_id": "5e6f7a8b"},
    )


def _restore_schema_failed() -> RestoreRecord:
    return restore_record(
        NOW - timedelta(minutes=5),
        status="failed",
        break_glass=True,
        error=SCHEMA_ERROR,
        result={
            "failed_stage": "verify",
            "target_state": "app_copy is restored but does not match the backup",
            "mismatches": [],
            "schema_differences": [d.record() for d in SCHEMA_DIFFERENCES],
            "schema_differences_total": len(SCHEMA_DIFFERENCES),
        },
    )


def restore_kinds() -> str:
    return _lines(
        restore.progress_line(RestoreProgress("r0a1b2c3d", "download", {})),
        restore.request_posted(restore_record(NOW)),
        restore.run_result(_restore_done(), announced=True),
        restore.run_result(_restore_done(), announced=False),
        restore.run_result(_restore_failed(), announced=True),
        restore.run_result(_restore_schema_failed(), announced=True),
        restore.run_result(
            dataclasses.replace(
                _restore_done(), result={**_restore_done().result, "prisma": PRISMA_RESULT}
            ),
            announced=True,
        ),
        restore.request_posted(
            restore_record(NOW, preview={"prisma_ahead": ["20251201090000_add_badges"]})
        ),
    )


def restore_json() -> str:
    return _json(
        [
            restore.record_json(restore_record(NOW)),
            restore.record_json(_restore_done(), announced=False),
            restore.record_json(_restore_failed(), announced=True),
            restore.record_json(_restore_schema_failed(), announced=True),
        ]
    )


def _drill(status_: str, **overrides: object) -> DrillRecord:
    base = DrillRecord(
        id="d1e2f3a4",
        database="app",
        backup_id="1a2b3c4d",
        restore_id="r9e8d7c6",
        scratch_db="backupbot_drill_d1e2f3a4",
        scratch_dropped=True,
        status=status_,
        actor="cli:alice",
        started_at=NOW - timedelta(minutes=2),
        heartbeat_at=NOW,
        finished_at=NOW,
        total_seconds=95.0,
        rto_minutes=30,
        result={
            "backup": {"id": "1a2b3c4d", "started_at": NOW.isoformat(), "label": None},
            "timings": {"download": 5.0, "restore": 80.0, "verify": 10.0},
            "total_seconds": 95.0,
            "within_rto": True,
            "tables": 12,
            "rows": 3520,
            "cleanup": "dropped",
        },
        error=None,
        channel="C0BACKUPS",
        message_ts="1714564800.000300",
    )
    return dataclasses.replace(base, **overrides)


DRILL_FAILED = _drill(
    "failed",
    total_seconds=None,
    error="Row counts differ in public.orders: 3400 in the backup, 3399 restored",
    result={"failed_stage": "verify", "timings": {"download": 5.0}, "cleanup": "dropped"},
    message_ts=None,
)


SCHEMA_DIFFERENCES = (
    SchemaDifference("index", "public.orders_customer_idx", "missing"),
    SchemaDifference("column", "public.orders.total", "type", "numeric(10,2)", "integer"),
    SchemaDifference("sequence", "public.orders_id_seq", "last value", 120, 1),
)
SCHEMA_ERROR = "Verification failed: " + str(differences_phrase(SCHEMA_DIFFERENCES)) + "."
DRILL_PASSED = _drill("passed", result={**_drill("passed").result, "schema": "ok"})
DRILL_SCHEMA_FAILED = _drill(
    "failed",
    error=SCHEMA_ERROR,
    result={
        "failed_stage": "verify",
        "timings": {"download": 5.0, "restore": 80.0, "verify": 10.0},
        "cleanup": "dropped",
        "schema_differences": [d.record() for d in SCHEMA_DIFFERENCES],
        "schema_differences_total": len(SCHEMA_DIFFERENCES),
    },
)


def drill_kinds() -> str:
    return _lines(
        drill.progress_line(DrillStage("d1e2f3a4", "restore", {"download": 5.0})),
        drill.result_lines(_drill("passed"), channel_told=True),
        drill.result_lines(DRILL_PASSED, channel_told=True),
        drill.result_lines(DRILL_FAILED, channel_told=False),
        drill.result_lines(DRILL_FAILED, channel_told=None),
        drill.result_lines(DRILL_SCHEMA_FAILED, channel_told=True),
    )


def drill_json() -> str:
    return _json(
        [
            drill.record_json(_drill("passed")),
            drill.record_json(DRILL_PASSED),
            drill.record_json(DRILL_FAILED),
            drill.record_json(DRILL_SCHEMA_FAILED),
        ]
    )


ALERT = AlertSummary(
    "a1",
    "backup_failed",
    "shop",
    say("Scheduled backup of shop failed. Fix the cause and run {c}.", c=Command("now", "shop")),
    NOW - timedelta(hours=1),
)
ACKED = dataclasses.replace(
    ALERT,
    id="a2",
    database=None,
    condition="checklist_unsigned",
    summary="The 2024-04 checklist is not signed off",
    acknowledged_by="U0BOB",
    acknowledged_at=NOW,
)
DRILLS = [
    DrillSummary("passed", NOW - timedelta(days=1), 125.0, 45, reviewed_by="U0BOB"),
    DrillSummary("failed", NOW - timedelta(days=31), None, 30, "scratch database not dropped"),
    DrillSummary("passed", NOW - timedelta(days=61), 160.0, 30),
]


def _statuses() -> list[DatabaseStatus]:
    """A healthy database, one that never had a good backup, one whose backup is stale;
    the warnings are the status rules' own."""
    healthy = db_status(
        "app",
        last_success=OK,
        kept=14,
        running=dataclasses.replace(OK, id="9f8e7d6c", status="running", actor="U0ALICE"),
        next_backup=NOW + timedelta(hours=14),
        timezone="Europe/Berlin",
        drills=DRILLS,
        rto_minutes=30,
        trend=Trend([2**20 * (10 + i) for i in range(8)], [60.0 + 5 * i for i in range(8)]),
    )
    never = database_status(
        _NoGoodBackup(), "shop", "supabase", NOW, alerts=[ALERT], rto_minutes=30
    )
    stale = database_status(_Stale(), "app", "neon", NOW, timedelta(hours=26), drills=DRILLS[1:2])
    return [healthy, never, stale]


class _NoGoodBackup:
    """What `database_status` reads of a catalog: a database whose only backup failed."""

    def latest(self, name: str, status_: str) -> Any:
        return failed(database=name) if status_ == "failed" else None

    def running(self, name: str) -> None:
        return None

    def count(self, name: str, status_: str) -> int:
        return 0

    def stored(self, name: str, limit: int | None = None) -> list[Any]:
        return []


class _Stale(_NoGoodBackup):
    """A database whose newest verified backup is 30 hours old."""

    def latest(self, name: str, status_: str) -> Any:
        if status_ == "failed":
            return None
        started = NOW - timedelta(hours=30)
        return dataclasses.replace(
            OK, started_at=started, finished_at=started + timedelta(minutes=2)
        )

    def count(self, name: str, status_: str) -> int:
        return 3


CHECKLISTS = [
    None,
    ChecklistSummary("2024-05", NOW, 3, 9),
    ChecklistSummary("2024-04", NOW, 9, 9, "U0BOB", NOW - timedelta(days=20)),
]


def status_kinds() -> str:
    report = _statuses()
    out = status.status_lines(report, BotStatus(CHECKLISTS[1], [ACKED]))
    return _lines(out, [status.checklist_line(c) for c in CHECKLISTS])


def status_json() -> str:
    return _json([status.status_json(s) for s in _statuses()])


def _plan() -> RetentionPlan:
    backups = [
        succeeded(id="00000001", started_at=NOW - timedelta(days=1)),
        succeeded(id="00000002", started_at=NOW - timedelta(days=40), label="pre-deploy"),
        succeeded(id="00000003", started_at=NOW - timedelta(days=45)),
        succeeded(id="00000004", started_at=NOW - timedelta(days=120), label="pre-deploy"),
        succeeded(id="00000005", database="legacy", started_at=NOW - timedelta(days=400)),
    ]
    return plan_retention(backups, [DatabasePolicy("app", 30)], RetentionSettings(), NOW)


def retention_kinds() -> str:
    plan = _plan()
    deleted = plan.to_delete
    report = RetentionReport(
        NOW,
        "cli:alice",
        plan,
        deleted=deleted[:1],
        failed=(FailedDeletion(deleted[1], "Permission denied: /srv/backups/app/x.zst."),),
        skipped=(),
    )
    return _lines(retention.plan_lines(plan), retention.report_lines(report))


def log_kinds() -> str:
    records = [
        incident(1),
        incident(
            2,
            actor="cli:alice",
            action="restore.break_glass",
            outcome="started",
            backup_id=None,
            details={"reason": "Slack outage, bad deploy"},
        ),
        incident(
            3,
            actor="scheduler",
            action="backup",
            outcome="failed",
            details={"error": "Could not reach the database server"},
        ),
        incident(4, database=None, action="retention.run", outcome="succeeded", backup_id=None),
        incident(
            5,
            action="note.recorded",
            outcome="ok",
            backup_id=None,
            details={
                "note_id": "n1a2b3c4d",
                "kind": "staging-restore",
                "text": "pg_restore of 1a2b into staging,\nrow counts match\x1b[31m",
            },
        ),
        incident(
            6,
            actor="U0BOB",
            action="note.confirmed",
            outcome="ok",
            backup_id=None,
            details={"note_id": "n1a2b3c4d", "kind": "staging-restore", "author": "U0ALICE"},
        ),
        incident(
            7,
            action="note.confirm_refused",
            outcome="refused",
            backup_id=None,
            details={"note_id": "n1a2b3c4d", "code": "note.own", "reason": "You wrote this note"},
        ),
    ]
    broken = ChainCheck(records=41, first_broken_id=42, problem="its hash does not match")
    return _lines(
        log.log_lines(records),
        log.verify_line(ChainCheck(records=3)),
        log.verify_line(broken),
        json.dumps(log.verify_json(broken)),
    )


def _rto_report() -> RtoReport:
    """A pass reviewed, a failed restore, a pass judged against the RTO of then, a
    database never drilled."""
    records = [
        _drill(
            "passed",
            id="d0000001",
            started_at=NOW - timedelta(days=60),
            total_seconds=2400.0,
            rto_minutes=60,
        ),
        dataclasses.replace(DRILL_FAILED, id="d0000002", started_at=NOW - timedelta(days=30)),
        _drill("passed", reviewed_by="U0BOB", reviewed_at=NOW),
    ]
    return rto_report(records, {"app": 30, "shop": 45}, NOW - timedelta(days=90), NOW)


def rto_kinds() -> str:
    empty = rto_report([], {"app": 30}, NOW - timedelta(days=90), NOW)
    return _lines(rto.report_lines(_rto_report()), "", rto.report_lines(empty))


def rto_json() -> str:
    return _json(rto.report_json(_rto_report()))


NOTE = OperationNote(
    "n1a2b3c4d", "app", "staging-restore", "pg_restore into staging", "U0ALICE", NOW
)


PRISMA_RESULT = {
    "before": "20251201090000_add_badges",
    "after": "20250201080000_admin_audit",
    "lacks": ["20251201090000_add_badges"],
    "failed_after": [],
}


def prisma_view() -> MigrationsView:
    """A history with each state: two applied, one rolled back and deployed again, one
    failed (with a name a shell must not run as is)."""
    t = NOW - timedelta(days=3)

    def at(hours: float) -> Any:
        return t + timedelta(hours=hours)

    rows = [
        Migration("20250101090000_init", at(0), at(0.01), None, 1, "c1"),
        Migration("20250201080000_admin_audit", at(1), None, at(2), 0, "c2"),
        Migration("20250201080000_admin_audit", at(3), at(3.01), None, 1, "c3"),
        Migration("20251202100000_add_index $(x)", at(4), None, None, 0, "c4"),
    ]
    backup_record = dataclasses.replace(
        succeeded(),
        manifest={"prisma_migration": {"migration_name": "20250101090000_init"}},
    )
    return MigrationsView("app", rows, backup_record)


def migrations_kinds() -> str:
    return _lines(
        migrations.view_lines(prisma_view()),
        migrations.view_lines(MigrationsView("app", None, None)),
        json.dumps(prisma_view().as_json(), indent=1),
    )


def note_kinds() -> str:
    posted = dataclasses.replace(NOTE, channel="C0BACKUPS", message_ts="1714564800.000100")
    restore_note = dataclasses.replace(NOTE, kind="restore", author="cli:alice")
    return _lines(
        [note.recorded_line(posted, True)],
        [note.recorded_line(restore_note, None), note.recorded_line(NOTE, False)],
        json.dumps(note.note_json(posted, True), indent=1),
    )


KINDS: dict[str, Callable[[], str]] = {
    "rto": rto_kinds,
    "rto_json": rto_json,
    "phrases": phrases,
    "errors": errors,
    "backup": backup_kinds,
    "backup_json": backup_json,
    "restore": restore_kinds,
    "restore_json": restore_json,
    "drill": drill_kinds,
    "drill_json": drill_json,
    "status": status_kinds,
    "status_json": status_json,
    "retention": retention_kinds,
    "log": log_kinds,
    "note": note_kinds,
    "migrations": migrations_kinds,
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_cli_output_matches_its_golden_file_and_has_no_markup(kind: str) -> None:
    text = KINDS[kind]()
    path = GOLDEN / f"{kind}.txt"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if not path.exists():
        pytest.fail(f"{path} is missing: run with BACKUPBOT_UPDATE_GOLDEN=1", pytrace=False)
    assert text == path.read_text(encoding="utf-8")
    assert MARKUP.findall(text) == []
