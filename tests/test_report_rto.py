"""The RTO record: `backupbot report rto` and `backupbot status` as an auditor runs them,
the installed CLI against a config written as the README shows (no Slack), after real
drills against a real PostgreSQL server; and the pure line and table underneath."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, update

from backupbot.bot.cli.render import rto as rto_text
from backupbot.commands.rto_record import rto_line, rto_phrase, trend_text
from backupbot.commands.rto_report import rto_report
from backupbot.commands.status import DrillSummary
from backupbot.storage.drills import DrillRecord
from backupbot.storage.models import DrillRow
from tests.test_cli_process import MARKUP, Cli

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


@pytest.fixture
def cli(tmp_path: Path, sample_db: dict[str, Any]) -> Cli:
    config = tmp_path / "backupbot.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_url": "sqlite:///backupbot.db",  # next to this file
                "storage": {"local": {"path": "./backups"}},
                "databases": [
                    {"name": "app", "url": "${APP_DATABASE_URL}", "rto_minutes": 20},
                    {"name": "shop", "url": "${APP_DATABASE_URL}"},
                ],
                "restore": {"rto_minutes": 45},
            }
        )
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SLACK_") and k not in ("BACKUPBOT_CONFIG", "APP_DATABASE_URL")
    }
    return Cli(config, {**env, "APP_DATABASE_URL": sample_db["url"]})


def _backdate(cli: Cli, drill_id: str, days: int) -> None:
    """Move a drill into the past, as the state database would have it then."""
    engine = create_engine(f"sqlite:///{cli.config.parent / 'backupbot.db'}")
    with engine.begin() as conn:
        row = conn.execute(DrillRow.__table__.select().where(DrillRow.id == drill_id)).one()
        delta = timedelta(days=days)
        conn.execute(
            update(DrillRow)
            .where(DrillRow.id == drill_id)
            .values(started_at=row.started_at - delta, finished_at=row.finished_at - delta)
        )
    engine.dispose()


def test_report_rto_lists_every_drill_since_the_date_for_auditors_without_slack(cli: Cli) -> None:
    nothing = cli("drill", "app", "--json")  # no backup yet: a drill that fails, for real
    assert nothing.returncode == 1
    old_fail = json.loads(nothing.stdout)["id"]
    assert cli("drill", "app").returncode == 1  # failed again; moved to 100 days ago below
    assert cli("backup", "now", "app").returncode == 0
    assert cli("backup", "now", "shop").returncode == 0
    passed = cli("drill", "--json")
    assert passed.returncode == 0, passed.stderr
    drills = json.loads(passed.stdout)
    _backdate(cli, old_fail, 100)

    default = cli("report", "rto", "--json")
    assert default.returncode == 0, default.stderr
    report = json.loads(default.stdout)
    rows = report["drills"]
    # the drill of 100 days ago is older than the default 90 days
    assert [(r["database"], r["result"]) for r in rows] == [
        ("app", "Fail"),
        ("app", "Pass"),
        ("shop", "Pass"),
    ]
    assert old_fail not in {r["drill_id"] for r in rows}
    fail, app, shop = rows
    assert fail["duration_seconds"] is None and fail["within_target"] is False
    assert app["target_minutes"] == 20 and shop["target_minutes"] == 45
    assert app["within_target"] is True and 0 < app["duration_seconds"] < 20 * 60
    assert app["reviewed_by"] is None and app["reviewed_at"] is None
    assert {r["drill_id"] for r in rows[1:]} == {d["id"] for d in drills}
    since = datetime.fromisoformat(report["since"])
    assert timedelta(days=89, hours=23) < datetime.fromisoformat(report["at"]) - since
    by_db = {s["database"]: s for s in report["databases"]}
    assert by_db["app"] == {
        "database": "app",
        "target_minutes": 20,
        "drills": 2,
        "passed": 1,
        "failed": 1,
        "median_seconds": app["duration_seconds"],  # the failed drill never restored
        "worst_seconds": app["duration_seconds"],
    }
    assert (by_db["shop"]["drills"], by_db["shop"]["passed"]) == (1, 1)

    wide = datetime.now(UTC) - timedelta(days=120)
    text = cli("report", "rto", "--since", f"{wide:%Y-%m-%d}", "--database", "app")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"RTO record from {wide:%Y-%m-%d} 00:00 UTC to ")
    assert lines[0].endswith(": 3 restore drill(s)")
    header = lines[2].split()
    assert header[:5] == ["DATABASE", "STARTED", "RESULT", "DURATION", "TARGET"]
    table = lines[3:6]
    assert [line.split()[0] for line in table] == ["app"] * 3
    assert [line.split()[4] for line in table] == ["Fail", "Fail", "Pass"]
    assert "shop" not in text.stdout
    assert table[0].split()[5:] == ["-", "20", "min", "no", "not", "reviewed", "-"]
    assert " Pass " in table[2] and " yes " in table[2] and table[2].endswith("not reviewed  -")
    summary = lines[7:]
    assert summary[0].split() == [
        "DATABASE",
        "TARGET",
        "DRILLS",
        "PASSED",
        "FAILED",
        "MEDIAN",
        "WORST",
    ]
    assert summary[1].split()[:6] == ["app", "20", "min", "3", "1", "2"]

    status = cli("status", "--json")
    rto = {s["database"]: s["rto"] for s in json.loads(status.stdout)}
    assert rto["app"]["target_minutes"] == 20 and rto["app"]["result"] == "Pass"
    assert [p["result"] for p in rto["app"]["trend"]] == ["Fail", "Fail", "Pass"]
    assert rto["shop"]["target_minutes"] == 45 and len(rto["shop"]["trend"]) == 1
    shown = cli("status", "app").stdout
    today = datetime.now(UTC)
    assert f"  RTO: target 20 min · tested {today:%Y-%m-%d} · Pass · " in shown
    assert " · not reviewed\n" in shown
    assert "  RTO trend (last 6 drills): ✗ → ✗ → " in shown

    bad = cli("report", "rto", "--since", "last tuesday")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "error: --since 'last tuesday' is not an ISO date or date-time: give e.g. 2026-11-01 "
        "(00:00 UTC) or 2026-11-01T12:30:00+01:00 (UTC when no offset is given)."
    ]
    unknown = cli("report", "rto", "--database", "shpo")
    assert unknown.returncode == 2 and "Did you mean shop?" in unknown.stderr
    helped = cli("report", "rto", "--help")
    assert helped.returncode == 0 and "--since DATE" in helped.stdout
    assert [m for m in MARKUP if m in "\n".join(cli.outputs)] == []


# -- the pure line and table -------------------------------------------------------------


def _summary(status: str, days: int, seconds: float | None, **more: Any) -> DrillSummary:
    return DrillSummary(status, NOW - timedelta(days=days), seconds, more.pop("rto", 30), **more)


def test_the_rto_line_is_the_latest_finished_drill_with_the_trend_of_the_last_six() -> None:
    drills = [
        _summary("running", 0, None),
        _summary("passed", 1, 250.0, reviewed_by="U0BOB"),
        *[_summary("passed", 30 * i, 100.0 + i) for i in range(2, 7)],
        _summary("failed", 400, None),  # the seventh finished drill: out of the trend
    ]
    line = rto_line("app", 30, drills)
    assert (line.result, line.seconds, line.reviewed_by) == ("Pass", 250.0, "U0BOB")
    assert line.tested_at == NOW - timedelta(days=1) and len(line.trend) == 6
    assert str(rto_phrase(line)) == (
        "RTO: target 30 min · tested 2026-12-01 · Pass · 4 min 10 s · reviewed by U0BOB"
    )
    assert trend_text(line) == " → ".join(
        [f"1 min {s} s ✓" for s in (46, 45, 44, 43, 42)] + ["4 min 10 s ✓"]
    )


@pytest.mark.parametrize(
    ("drills", "target", "words"),
    [
        ([], 30, "RTO: target 30 min · never tested"),
        (
            [_summary("failed", 2, None)],
            30,
            "RTO: target 30 min · tested 2026-11-30 · Fail · not reviewed",
        ),
        # a "passed" drill over its target is a Fail (the runbook's rule, whatever the status)
        ([_summary("passed", 2, 1900.0)], 30, "· tested 2026-11-30 · Fail · 31 min 40 s ·"),
        # judged against the target the database had then
        ([_summary("passed", 2, 1900.0, rto=60)], 30, "Pass · 31 min 40 s (against 60 min then)"),
        ([_summary("passed", 2, 10.0)], None, "RTO: target 30 min · tested"),
    ],
)
def test_the_rto_line_in_words(drills: list[DrillSummary], target: int | None, words: str) -> None:
    assert words in str(rto_phrase(rto_line("app", target, drills)))


def _record(
    database: str, days: int, status: str, seconds: float | None, **more: Any
) -> DrillRecord:
    base = DrillRecord(
        id=f"d{database[:2]}{days:05d}",
        database=database,
        backup_id="1a2b3c4d",
        restore_id=None,
        scratch_db="backupbot_drill_x",
        scratch_dropped=True,
        status=status,
        actor="scheduler",
        started_at=NOW - timedelta(days=days),
        heartbeat_at=NOW,
        finished_at=None if status == "running" else NOW - timedelta(days=days),
        total_seconds=seconds,
        rto_minutes=30,
        result={},
        error=None,
        channel=None,
        message_ts=None,
    )
    return dataclasses.replace(base, **more)


def test_the_auditors_table_and_summary() -> None:
    reviewed = NOW - timedelta(days=9)
    records = [
        _record("app", 10, "passed", 120.0, reviewed_by="U0BOB", reviewed_at=reviewed),
        _record("app", 40, "failed", None),
        _record("app", 70, "passed", 300.0),
        _record("app", 0, "running", None),  # not finished: not in the record
        _record("legacy", 20, "failed", 2000.0),  # no longer configured: still reported
        _record("app", 50, "passed", 1900.0, rto_minutes=60),
    ]
    report = rto_report(records, {"app": 30, "shop": 45}, NOW - timedelta(days=90), NOW)
    assert [(r.database, r.result, r.within_target) for r in report.rows] == [
        ("app", "Pass", True),
        ("app", "Pass", True),
        ("app", "Fail", False),
        ("legacy", "Fail", False),
        ("app", "Pass", True),
    ]
    app, shop, legacy = report.summaries
    assert (app.drills, app.passed, app.failed) == (4, 3, 1)
    assert (app.median_seconds, app.worst_seconds) == (300.0, 1900.0)
    assert (shop.drills, shop.median_seconds, shop.target_minutes) == (0, None, 45)
    assert (legacy.target_minutes, legacy.failed) == (None, 1)
    lines = rto_text.report_lines(report)
    assert lines[0] == (
        "RTO record from 2026-09-03 12:00 UTC to 2026-12-02 12:00 UTC: 5 restore drill(s)"
    )
    assert lines[2].startswith("DATABASE  STARTED               RESULT  DURATION")
    assert lines[-1].split() == [
        "legacy",
        "?",
        "1",
        "0",
        "1",
        "33",
        "min",
        "20",
        "s",
        "33",
        "min",
        "20",
        "s",
    ]
    assert lines[7] == (
        "app       2026-11-22 12:00 UTC  Pass    2 min 0 s    30 min  yes     U0BOB"
        "         2026-11-23 12:00 UTC"
    )
    assert rto_report([], {"app": 30}, NOW, NOW).as_json()["drills"] == []
    assert "No restore drill finished in this period." in rto_text.report_lines(
        rto_report([], {"app": 30}, NOW, NOW)
    )
    only = rto_report(records, {"app": 30, "shop": 45}, NOW, NOW, database="shop")
    assert only.rows == () and [s.database for s in only.summaries] == ["shop"]
