"""Restore drills: the latest verified backup restored into a scratch database, verified,
timed against the RTO, posted as Pass/Fail, and the scratch database dropped whatever
happened (also after a crash, and never a database the drills table does not name)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy import update

from backupbot.bot.cli.main import main
from backupbot.bot.composition import build_services
from backupbot.bot.services import Services
from backupbot.bot.slack.flows import Flows
from backupbot.commands.conditions import DRILL_FAILED, DRILL_MISSING
from backupbot.commands.drill_conditions import DrillConditions
from backupbot.commands.drill_model import (
    SCRATCH_PREFIX,
    STOPPED,
    DrillAlreadyRunning,
    judge,
    scratch_name,
)
from backupbot.devkit.slack_standin import SlackStandin, block_kit_errors
from backupbot.errors import UsageError
from backupbot.storage.drills import DrillLog, new_drill_id
from backupbot.storage.models import BackupRow
from tests.conftest import BOT_TOKEN, CHANNEL, PG_PASSWORD, ManualClock, make_settings

ALICE = "UALICE"


def _settings(state_url: str, tmp_path: Path, url: str, **extra: Any) -> Any:
    databases = [{"name": "app", "url": url}, *extra.pop("more", [])]
    return make_settings(
        state_url=state_url,
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=databases,
        extra=extra or None,
    )


@pytest.fixture
def services(tmp_path: Path, sample_db: dict[str, Any]) -> Iterator[Services]:
    """Services without Slack, on a clock the test moves."""
    settings = _settings(f"sqlite:///{tmp_path}/state.db", tmp_path, sample_db["url"])
    built = build_services(settings, {}, clock=ManualClock())
    yield built
    built.close()


def _exists(pg: Any, name: str) -> bool:
    with psycopg.connect(pg.url("postgres"), autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None


def _drill_incidents(services: Services, drill_id: str) -> list[Any]:
    return [
        i for i in reversed(services.incidents.recent(500)) if i.details.get("drill_id") == drill_id
    ]


def _corrupt_artifact(tmp_path: Path, artifact_key: str) -> None:
    artifact = tmp_path / "backups" / artifact_key
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))


# -- the rules, as pure functions --------------------------------------------------------


def test_scratch_names_are_lowercase_identifiers_that_fit_and_carry_the_drill_id() -> None:
    name = scratch_name("App.Prod-EU", "d1a2b3c4")
    assert name == "backupbot_drill_app_prod_eu_d1a2b3c4"
    long = scratch_name("x" * 63, "d1a2b3c4")
    assert len(long) == 63 and long.startswith(SCRATCH_PREFIX) and long.endswith("_d1a2b3c4")
    assert scratch_name("app", "d00000001") != scratch_name("app", "d00000002")


def test_a_verified_restore_over_the_rto_fails_the_drill_and_says_by_how_much() -> None:
    assert judge(True, 29 * 60, 30, None) == ("passed", None)
    status, why = judge(True, 41 * 60, 30, None)
    assert status == "failed"
    assert why is not None and "Restored and verified correctly" in why
    assert "41 min" in why and "RTO of 30 min" in why
    assert judge(False, None, 30, "SHA-256 mismatch.") == ("failed", "SHA-256 mismatch.")


# -- drills against the real server --------------------------------------------------------


def test_a_drill_of_a_good_backup_passes_with_timings_posted_and_leaves_no_scratch_database(
    pg: Any, sample_db: dict[str, Any], tmp_path: Path, bot_factory: Any, state_url: str
) -> None:
    bot = bot_factory(_settings(state_url, tmp_path, sample_db["url"]), ManualClock())
    services: Services = bot.services
    backup = services.backups.backup_now("app", ALICE)
    stages: list[str] = []

    [record] = Flows(services, services.slack_client).drill.run(
        "app", ALICE, lambda s: stages.append(s.stage)
    )

    assert record.status == "passed" and record.error is None
    assert record.backup_id == backup.id and record.rto_minutes == 30
    assert stages == ["download", "restore", "verify"]  # created during the download
    assert set(record.timings) == {"download", "create", "restore", "verify"}
    assert record.total_seconds is not None and 0 < record.total_seconds < 30 * 60
    assert record.result["tables"] == len(sample_db["counts"])
    assert record.result["rows"] == sum(sample_db["counts"].values())
    assert record.result["cleanup"] == "dropped" and record.scratch_dropped
    assert record.scratch_db.startswith("backupbot_drill_app_d")
    assert not _exists(pg, record.scratch_db)

    # One channel message, posted at the start and updated to the result.
    [message] = bot.standin.messages(CHANNEL)
    assert (record.channel, record.message_ts) == (CHANNEL, message.ts)
    assert message.history and message.history[0]["text"] == "Restore drill of app started…"
    assert "Restore drill of app passed" in message.text
    body = json.dumps(message.blocks)
    for words in ("Download", "Create", "Restore", "Verify", "Total vs RTO", "/ 30 min"):
        assert words in body
    assert backup.id in body and f"{record.result['rows']:,} row(s)" in body
    assert record.scratch_db in body and "(dropped)" in body
    assert block_kit_errors(message.blocks) == []
    assert PG_PASSWORD not in body

    actions = [i.action for i in _drill_incidents(services, record.id)]
    assert actions == ["drill.started", "drill.cleanup", "drill.passed"]
    passed = _drill_incidents(services, record.id)[-1]
    assert passed.details["timings"] == record.timings and passed.details["within_rto"]
    restore = services.restores.get(record.result["restore_id"])
    assert restore.mode == "drill" and restore.status == "succeeded"
    assert restore.target_db == record.scratch_db
    assert PG_PASSWORD not in json.dumps([i.as_json() for i in services.incidents.recent()])
    assert [d.id for d in services.drills.recent("app")] == [record.id]
    assert services.drills.latest("app") == record
    [summary] = services.drills.summaries("app")
    assert summary.status == "passed" and summary.within_rto


def test_a_drill_of_a_corrupted_artifact_fails_at_download_and_creates_nothing(
    pg: Any, sample_db: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    bot = bot_factory(_settings(f"sqlite:///{tmp_path}/s.db", tmp_path, sample_db["url"]))
    backup = bot.services.backups.backup_now("app", ALICE)
    _corrupt_artifact(tmp_path, backup.artifact_key)

    [record] = Flows(bot.services, bot.services.slack_client).drill.run("app", "scheduler")

    assert record.status == "failed" and record.total_seconds is None
    assert record.error is not None and ("SHA-256" in record.error or "corrupt" in record.error)
    assert record.result["failed_stage"] == "download"
    assert record.scratch_dropped and not _exists(pg, record.scratch_db)
    [message] = bot.standin.messages(CHANNEL)
    assert "Restore drill of app failed" in message.text
    assert "during download" in json.dumps(message.blocks)
    actions = [i.action for i in _drill_incidents(bot.services, record.id)]
    assert actions == ["drill.started", "drill.cleanup", "drill.failed"]
    assert _drill_incidents(bot.services, record.id)[-1].details["error"] == record.error


def test_a_verification_mismatch_fails_the_drill_and_the_scratch_database_is_still_dropped(
    pg: Any, sample_db: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    bot = bot_factory(_settings(f"sqlite:///{tmp_path}/s.db", tmp_path, sample_db["url"]))
    backup = bot.services.backups.backup_now("app", ALICE)
    # The manifest says the backup had more users than the archive holds.
    manifest = dict(backup.manifest or {})
    manifest["row_counts"] = {**manifest["row_counts"], "public.User": 10**6}
    with bot.services.engine.begin() as conn:
        conn.execute(update(BackupRow).where(BackupRow.id == backup.id).values(manifest=manifest))

    [record] = Flows(bot.services, bot.services.slack_client).drill.run("app", ALICE)

    assert record.status == "failed" and record.result["failed_stage"] == "verify"
    assert "public.User" in (record.error or "")
    assert record.result["mismatches"][0]["table"] == "public.User"
    # The restore engine keeps a mismatched target for inspection; a drill does not.
    assert record.result["cleanup"] == "dropped" and not _exists(pg, record.scratch_db)
    [message] = bot.standin.messages(CHANNEL)
    body = json.dumps(message.blocks)
    assert "Tables that differ from the backup" in body and "1,000,000" in body
    assert "Verify" in body and "Stopped after" in body  # the stages that ran are timed


def test_a_drill_without_a_verified_backup_fails_as_a_finding_that_clears_when_a_drill_passes(
    pg: Any, sample_db: dict[str, Any], tmp_path: Path
) -> None:
    clock = ManualClock()
    more = [{"name": "web", "url": sample_db["url"], "rto_minutes": 5}]
    settings = _settings(f"sqlite:///{tmp_path}/s.db", tmp_path, sample_db["url"], more=more)
    services = build_services(settings, {}, clock=clock)
    try:
        conditions = DrillConditions(services.drills)
        assert conditions.conditions == (DRILL_FAILED, DRILL_MISSING)
        assert conditions.check(clock.now()) == []  # never drilled is not a failed drill

        failed = services.drills.run("app", "scheduler")
        assert failed.status == "failed" and failed.backup_id is None
        assert "no verified backup" in (failed.error or "") and "/backup now app" in failed.error
        assert failed.scratch_dropped and not _exists(pg, failed.scratch_db)
        [finding] = conditions.check(clock.now())
        assert (finding.condition, finding.database) == (DRILL_FAILED, "app")
        summary = str(finding.summary)
        assert "restore drill of app" in summary and "/backup drill app" in summary
        assert finding.details["drill_id"] == failed.id

        clock.advance(minutes=10)
        services.backups.backup_now("app", ALICE)
        clock.advance(minutes=10)
        passed = services.drills.run("app", ALICE)
        assert passed.status == "passed"
        assert conditions.check(clock.now()) == []
        # The RTO is per database.
        services.backups.backup_now("web", ALICE)
        assert services.drills.run("web", ALICE).rto_minutes == 5
        assert [d.status for d in services.drills.recent("app")] == ["passed", "failed"]
    finally:
        services.close()


def test_no_passed_drill_within_max_age_is_a_finding_until_a_drill_passes(
    pg: Any, sample_db: dict[str, Any], tmp_path: Path
) -> None:
    clock = ManualClock()
    more = [{"name": "web", "url": sample_db["url"]}]  # never backed up: backups alert
    settings = _settings(f"sqlite:///{tmp_path}/s.db", tmp_path, sample_db["url"], more=more)
    services = build_services(settings, {}, clock=clock)
    try:
        conditions = DrillConditions(services.drills, timedelta(days=35))

        def missing() -> list[Any]:
            return [f for f in conditions.check(clock.now()) if f.condition == DRILL_MISSING]

        first = services.backups.backup_now("app", ALICE)
        clock.advance(days=35)
        assert missing() == []  # counted from the first backup: 35 days are allowed
        clock.advance(hours=1)
        [finding] = missing()
        assert finding.database == "app" and finding.details["last_passed_drill_id"] is None
        summary = str(finding.summary)
        assert "never drilled since its first backup" in summary and "/backup drill app" in summary
        assert finding.details["since"] == first.started_at.isoformat()

        passed = services.drills.run("app", ALICE)
        assert passed.status == "passed" and missing() == []
        later = services.drills.start("app", ALICE)  # a later drill, still running, does
        assert missing() == [] and later.id  # not make the passed one older

        clock.advance(days=36)
        [again] = missing()
        assert again.details["last_passed_drill_id"] == passed.id
        assert "the last passed drill was" in str(again.summary)
    finally:
        services.close()


def test_leftovers_of_a_stopped_bot_are_dropped_and_failed_and_nothing_else_is_touched(
    pg: Any, services: Services
) -> None:
    clock = services.clock
    assert isinstance(clock, ManualClock)
    log = DrillLog(services.engine)
    started = clock.now()

    def drill_row(database: str = "app") -> Any:
        drill_id = new_drill_id()
        record = log.create(
            drill_id,
            database=database,
            scratch_db=scratch_name(database, drill_id),
            actor="scheduler",
            rto_minutes=30,
            backup_id=None,
            now=clock.now(),
        )
        pg.create_database(record.scratch_db)
        return record

    crashed = drill_row()  # the bot died mid-restore: running, heartbeat goes stale
    similar = "backupbot_drill_app_dffffffff"  # looks like one, but no drill names it
    pg.create_database(similar)
    clock.advance(minutes=20)
    # Another process is drilling right now (another database: one drill of a database
    # runs at a time, so a crashed one holds its database until it is failed).
    live = drill_row("web")
    try:
        changed = services.drills.cleanup_leftovers(clock.now())

        assert [r.id for r in changed] == [crashed.id]
        [after] = changed
        assert after.status == "failed" and after.error == STOPPED and after.scratch_dropped
        assert after.finished_at == clock.now() and after.started_at == started
        assert not _exists(pg, crashed.scratch_db)
        assert _exists(pg, similar), "a database the drills table does not name is never dropped"
        assert _exists(pg, live.scratch_db) and services.drills.get(live.id).status == "running"
        actions = [i.action for i in _drill_incidents(services, crashed.id)]
        assert actions == ["drill.failed", "drill.cleanup"]
        assert services.drills.cleanup_leftovers(clock.now()) == []  # once only
    finally:
        for name in (similar, live.scratch_db, crashed.scratch_db):
            pg.drop_database(name)


def test_a_live_drill_refuses_a_second_one_and_a_dead_one_gives_way(
    pg: Any, services: Services
) -> None:
    clock = services.clock
    assert isinstance(clock, ManualClock)
    log = DrillLog(services.engine)
    drill_id = new_drill_id()
    held = log.create(
        drill_id,
        database="app",
        scratch_db=scratch_name("app", drill_id),
        actor="scheduler",
        rto_minutes=30,
        backup_id=None,
        now=clock.now(),
    )
    assert held is not None
    try:
        with pytest.raises(DrillAlreadyRunning, match="already running"):
            services.drills.start("app", ALICE)
        clock.advance(minutes=20)  # its process stopped: the heartbeat went stale
        fresh = services.drills.start("app", ALICE)
        assert fresh.id != held.id
        assert services.drills.get(held.id).status == "failed"
    finally:
        services.close()


def test_slash_drill_acks_at_once_and_posts_the_result_in_the_channel(
    sample_db: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    bot = bot_factory(_settings(f"sqlite:///{tmp_path}/s.db", tmp_path, sample_db["url"]))
    bot.services.backups.backup_now("app", ALICE)

    resp = bot.signer.slash_command(ALICE, "drill app")

    assert resp.status == 200
    ack = json.dumps(resp.json())  # the blocks carry the markup; the fallback is plain
    assert "restore drill of `app`" in ack and f"<#{CHANNEL}>" in ack
    bot.wait_idle()
    [record] = bot.services.drills.recent("app")
    assert record.actor == ALICE and record.status == "passed"
    [message] = bot.standin.messages(CHANNEL)
    assert message.ts == record.message_ts and "passed" in message.text
    assert bot.standin.response_posts() == []

    # Unknown databases are refused by the parser, before anything runs.
    body = bot.signer.slash_command(ALICE, "drill nosuch").json()
    assert "nosuch" in body["text"]
    assert len(bot.services.drills.recent("app")) == 1


def test_cli_drill_exits_0_on_pass_1_on_fail_2_on_usage_and_posts_when_slack_is_set_up(
    pg: Any,
    sample_db: dict[str, Any],
    tmp_path: Path,
    slack: SlackStandin,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("APP_DATABASE_URL", sample_db["url"])
    for var in ("SLACK_BOT_TOKEN", "SLACK_API_URL", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    cfg = {
        "state_url": f"sqlite:///{tmp_path}/state.db",
        "storage": {"local": {"path": str(tmp_path / "backups")}},
        "slack": {"channel": CHANNEL},
        "databases": [{"name": "app", "url": "${APP_DATABASE_URL}"}],
    }
    config = tmp_path / "backupbot.yml"
    config.write_text(yaml.safe_dump(cfg))
    args = ["--config", str(config), "drill"]

    assert main([*args, "nosuch"]) == 2
    assert "nosuch" in capsys.readouterr().err

    assert main([*args, "app"]) == 1  # no verified backup yet: a failed drill
    out, err = capsys.readouterr()
    assert "FAILED" in err and "no verified backup" in err and out.strip().startswith("d")
    assert main(args) == 1  # no database named: every database, here the one
    out, err = capsys.readouterr()
    assert "FAILED" in err and len(out.split()) == 1

    assert main(["--config", str(config), "backup", "now", "app"]) == 0
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack.base_url)
    capsys.readouterr()
    assert main([*args, "app"]) == 0
    out, err = capsys.readouterr()
    drill_id = out.strip()
    assert "PASSED" in err and "total:" in err and "RTO 30 min" in err and "dropped" in err
    [message] = slack.messages(CHANNEL)
    assert "Restore drill of app passed" in message.text and drill_id in json.dumps(message.blocks)
    assert PG_PASSWORD not in err + json.dumps(message.blocks)


def test_an_unknown_database_is_a_usage_error(services: Services) -> None:
    with pytest.raises(UsageError, match="no configured database named 'nosuch'"):
        services.drills.run("nosuch", ALICE)
    assert services.drills.recent("nosuch") == []


def test_leftover_cleanup_drops_a_finished_drills_scratch_database_it_could_not_drop_before(
    pg: Any, services: Services
) -> None:
    log = DrillLog(services.engine)
    drill_id = new_drill_id()
    record = log.create(
        drill_id,
        database="app",
        scratch_db=scratch_name("app", drill_id),
        actor=ALICE,
        rto_minutes=30,
        backup_id=None,
        now=services.clock.now(),
    )
    log.finish(record.id, "passed", services.clock.now(), result={}, error=None, total_seconds=3)
    pg.create_database(record.scratch_db)
    try:
        [changed] = services.drills.cleanup_leftovers(services.clock.now() + timedelta(seconds=1))
        assert changed.status == "passed" and changed.scratch_dropped
        assert not _exists(pg, record.scratch_db)
    finally:
        pg.drop_database(record.scratch_db)
