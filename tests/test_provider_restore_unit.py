"""Provider restores, below the process: `--to` read in UTC, in `--tz` and with an offset
(DST gaps and repeats refused with both readings), migration 0014 on a state database
that already holds restores, and the Slack blocks escaping whatever the provider said."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, text

from backupbot.bot.slack.blocks.points import points_message
from backupbot.bot.slack.blocks.restore import restore_message, restore_report
from backupbot.commands.provider_points import Point, PointsReport
from backupbot.commands.provider_request import (
    ProviderAsk,
    ProviderPlanner,
    ProviderRefused,
    check_ask,
    result_name,
)
from backupbot.commands.provider_time import in_zone_text, parse_point
from backupbot.commands.restore_model import RestoreProgress
from backupbot.devkit.slack_standin import block_kit_errors
from backupbot.errors import UsageError
from backupbot.settings import DatabaseSettings
from backupbot.storage.providers.contract import RecoveryWindow, RestorePlan
from backupbot.storage.restores import FAILED, PROVIDER_SOURCE, RUNNING, SUCCEEDED
from tests.restore_records import restore_record

NOW = datetime(2026, 12, 3, 5, 0, tzinfo=UTC)

# -- --to and --tz ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tz", "utc"),
    [
        ("2026-11-30 14:05", None, datetime(2026, 11, 30, 14, 5, tzinfo=UTC)),
        ("2026-11-30 14:05:30", None, datetime(2026, 11, 30, 14, 5, 30, tzinfo=UTC)),
        ("2026-11-30T14:05", None, datetime(2026, 11, 30, 14, 5, tzinfo=UTC)),
        ("2026-11-30T14:05:00Z", None, datetime(2026, 11, 30, 14, 5, tzinfo=UTC)),
        ("2026-11-30 14:05+01:00", None, datetime(2026, 11, 30, 13, 5, tzinfo=UTC)),
        # winter in Berlin is UTC+1, summer UTC+2; New York is UTC-5 in winter
        ("2026-11-30 14:05", "Europe/Berlin", datetime(2026, 11, 30, 13, 5, tzinfo=UTC)),
        ("2026-07-01 14:05", "Europe/Berlin", datetime(2026, 7, 1, 12, 5, tzinfo=UTC)),
        ("2026-11-30 09:05", "America/New_York", datetime(2026, 11, 30, 14, 5, tzinfo=UTC)),
        # the hours either side of a change are unambiguous
        ("2026-03-29 01:59", "Europe/Berlin", datetime(2026, 3, 29, 0, 59, tzinfo=UTC)),
        ("2026-03-29 03:00", "Europe/Berlin", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        ("2026-10-25 03:00", "Europe/Berlin", datetime(2026, 10, 25, 2, 0, tzinfo=UTC)),
        ("  2026-11-30   14:05 ", None, datetime(2026, 11, 30, 14, 5, tzinfo=UTC)),
    ],
)
def test_to_is_read_as_utc_in_the_zone_or_with_its_offset(
    text: str, tz: str | None, utc: datetime
) -> None:
    assert parse_point(text, tz) == utc


def test_a_time_the_clocks_skip_is_refused_with_both_readings() -> None:
    with pytest.raises(UsageError) as refused:
        parse_point("2026-03-29 02:30", "Europe/Berlin")
    said = str(refused.value)
    assert "does not exist in Europe/Berlin" in said
    assert "2026-03-29 01:30 UTC" in said and "2026-03-29 00:30 UTC" in said


def test_a_time_that_happens_twice_is_refused_with_both_offsets() -> None:
    with pytest.raises(UsageError) as refused:
        parse_point("2026-10-25 02:30", "Europe/Berlin")
    said = str(refused.value)
    assert "happens twice in Europe/Berlin" in said
    assert '"2026-10-25 02:30+02:00" (2026-10-25 00:30 UTC)' in said
    assert '"2026-10-25 02:30+01:00" (2026-10-25 01:30 UTC)' in said
    # the offset it suggests is then accepted, without --tz
    assert parse_point("2026-10-25 02:30+01:00") == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "tz", "words"),
    [
        ("yesterday", None, "is not a time"),
        ("2026-13-01 10:00", None, "is not a time"),
        ("2026-11-30 14:05", "Mars/Olympus", "is not a time zone"),
        ("2026-11-30 14:05+01:00", "Europe/Berlin", "has its own offset"),
    ],
)
def test_a_wrong_time_or_zone_is_refused(text: str, tz: str | None, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        parse_point(text, tz)


def test_the_point_is_shown_in_the_zone_asked_for() -> None:
    moment = datetime(2026, 7, 1, 12, 5, tzinfo=UTC)
    assert in_zone_text(moment, "Europe/Berlin") == "2026-07-01 14:05:00 CEST (Europe/Berlin)"
    assert in_zone_text(moment, None) is None


@pytest.mark.parametrize(
    ("ask", "ref", "into", "words"),
    [
        (ProviderAsk(tz="Europe/Berlin"), None, None, "--tz says how to read --to"),
        (ProviderAsk(to="2026-11-30 14:05", snapshot="s1"), None, None, "Choose one"),
        (ProviderAsk(to="2026-11-30 14:05"), "1a2b3c4d", None, "A backup id restores"),
        (ProviderAsk(snapshot="s1"), None, "staging", "--into is for the bot's own"),
    ],
)
def test_meaningless_combinations_are_refused(
    ask: ProviderAsk, ref: str | None, into: str | None, words: str
) -> None:
    with pytest.raises(UsageError, match=words):
        check_ask(ask, ref, into)


def test_a_plain_backup_restore_passes_the_provider_checks() -> None:
    check_ask(ProviderAsk(), "1a2b3c4d", "staging")
    check_ask(ProviderAsk(to="2026-11-30 14:05"), "latest", None)
    assert result_name("My_App", NOW) == "my-app-restore-20261203-050000"


# -- migration 0014 --------------------------------------------------------------------


def test_migration_0014_keeps_existing_restores_as_backup_restores(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from backupbot.storage.state import MIGRATIONS, create_state_engine, migrate

    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = create_state_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0013")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO restores (id, database, backup_id, mode, target_db, target_where, "
                "status, requester, required_approvals, approval_count, approvals, created_at, "
                "expires_at, preview, break_glass, announce_pending, result) VALUES ('r1', "
                "'app', '1a2b3c4d', 'new', 'app_r', 'h:5432/app_r', 'succeeded', 'U1', 1, 1, "
                "'[]', '2026-12-01 10:00:00', '2026-12-01 10:30:00', '{}', 0, 0, '{}')"
            )
        )
    migrate(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT source_kind, provider, point_at FROM restores")).one()
    assert tuple(row) == ("backup", None, None)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0013")
    with engine.connect() as conn:
        columns = [r[1] for r in conn.execute(text("PRAGMA table_info(restores)"))]
    assert "source_kind" not in columns and "target_name" in columns
    engine.dispose()
    create_engine(url).dispose()


# -- Slack: provider strings are escaped -----------------------------------------------

HOSTILE = "<!channel> *bold* <https://evil.example|click> `tick`"


def _provider_record(**overrides: Any) -> Any:
    preview = {
        "provider": {
            "name": "neon",
            "window": {
                "enabled": True,
                "earliest": (NOW - timedelta(days=7)).isoformat(),
                "latest": NOW.isoformat(),
                "retention_days": 7,
                "notes": [HOSTILE],
            },
            "point": (NOW - timedelta(minutes=10)).isoformat(),
            "tz": "Europe/Berlin",
            "point_local": "2026-12-03 05:50:00 CET (Europe/Berlin)",
            "snapshot": None,
            "into": "new",
            "current_state": HOSTILE,
            "needs_safety_dump": False,
            "estimated_minutes": 2,
        },
        "source": {"name": "app", "where": "db:5432/app"},
        "manifest": None,
        "rto_minutes": 60,
    }
    values: dict[str, Any] = {
        "backup_id": "",
        "mode": "new",
        "target_db": "app-restore-20261203-050000",
        "target_where": "neon:app-restore-20261203-050000",
        "preview": preview,
        "source_kind": PROVIDER_SOURCE,
        "provider": "neon",
        "provider_into": "new",
        "point_at": NOW - timedelta(minutes=10),
        "decided_by": "UBOB",
        "decided_at": NOW,
    }
    return restore_record(NOW, **{**values, **overrides})


def _mrkdwn(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks)


def test_every_state_of_a_provider_restore_escapes_what_the_provider_said() -> None:
    result = {
        "result_name": HOSTILE,
        "result_host": "<@U999>.neon.tech",
        "operation_id": HOSTILE,
        "tables": 3,
        "rows": 10,
        "timings": {"provider": 3.0, "verify": 0.5},
        "total_seconds": 3.5,
        "failed_stage": "provider",
        "target_state": HOSTILE,
        "differing": [{"table": HOSTILE, "expected": 1, "actual": 2}],
        "compared_with": "1a2b3c4d",
        "compared_with_at": NOW.isoformat(),
    }
    progress = RestoreProgress("r0a1b2c3d", "provider", {}, None, HOSTILE)
    for status in ("pending", RUNNING, SUCCEEDED, FAILED):
        record = _provider_record(status=status, result=result, error=HOSTILE)
        message = restore_message(record, NOW, progress if status == RUNNING else None)
        messages = [message] + ([restore_report(record)] if status in (SUCCEEDED, FAILED) else [])
        for m in messages:
            shown = _mrkdwn(m.blocks)
            assert "<!channel>" not in shown and "<https://evil" not in shown, (status, shown)
            assert "<@U999>" not in shown
            assert block_kit_errors(m.blocks) == []
    pending = _mrkdwn(restore_message(_provider_record(status="pending"), NOW).blocks)
    assert "2026-12-03 04:50 UTC" in pending and "CET (Europe/Berlin)" in pending
    assert "about 2 min" in pending and "restore_approve" in pending


def test_points_escape_provider_labels_and_say_when_pitr_is_off() -> None:
    report = PointsReport(
        "app",
        "supabase",
        RecoveryWindow(enabled=False, reason=HOSTILE),
        [Point("snapshot", NOW, "101", ("--snapshot", "101"), label=HOSTILE)],
    )
    message = points_message(report, NOW)
    shown = _mrkdwn(message.blocks)
    assert "<!channel>" not in shown and "No point-in-time recovery" in shown
    assert "/backup restore app --snapshot 101" in shown
    assert block_kit_errors(message.blocks) == []


# -- what each provider can do, refused before the request is posted ---------------------


class _Adapter:
    """An adapter whose plan says both kinds work (as Neon's and Railway's do)."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def plan(self, into: str) -> RestorePlan:
        return RestorePlan(into, "state", False, 1, ("new", "in_place"))  # type: ignore[arg-type]

    def recovery_window(self) -> RecoveryWindow:
        raise AssertionError("asked after the refusal")


@pytest.mark.parametrize(
    ("provider", "ask", "words"),
    [
        ("neon", ProviderAsk(snapshot="snap-1", in_place=True), "restores a snapshot into a new"),
        ("railway", ProviderAsk(snapshot="b1"), "restores a snapshot in place"),
        ("railway", ProviderAsk(to="2026-12-01 10:00", in_place=True), "a point in time into a"),
        ("render", ProviderAsk(snapshot="exp-0001"), "cannot restore a snapshot of app through"),
    ],
)
def test_a_kind_of_restore_the_provider_cannot_do_is_refused_first(
    provider: str, ask: ProviderAsk, words: str
) -> None:
    db = DatabaseSettings(name="app", url=SecretStr("postgresql://u:p@h/app"))
    planner = ProviderPlanner(
        databases={"app": db},
        catalog=cast(Any, None),
        policy=cast(Any, None),
        approvers=cast(Any, None),
        settings=cast(Any, None),
        adapters=lambda _db: cast(Any, _Adapter(provider)),
    )
    with pytest.raises(ProviderRefused, match=words):
        planner.new_restore(db, ask, "UALICE", None, NOW)
