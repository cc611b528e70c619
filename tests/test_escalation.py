"""Escalation alerts against the real state database and the Slack stand-in, with a
controlled clock: alerts open from the catalog, ping each level once at its minute (in the
thread and by DM), stop when someone acknowledges, resolve when the condition clears, and
never duplicate, even with two bot processes sharing one PostgreSQL state database."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from backupbot.bot.slack.blocks import alert as alert_blocks
from backupbot.bot.slack.flows import Flows
from backupbot.bot.slack.flows.alert import AlertFlow
from backupbot.commands.backup_conditions import BackupConditions
from backupbot.commands.conditions import (
    BACKUP_FAILED,
    CHECKLIST_OVERDUE,
    STALE,
    VERIFICATION_FAILED,
    Finding,
)
from backupbot.commands.provider_support import provider_contact
from backupbot.storage.alerts import BackupFacts
from backupbot.storage.catalog import SuccessDetails
from tests.conftest import (
    BOT_TOKEN,
    CHANNEL,
    PG_PASSWORD,
    ManualClock,
    clicked_while_posting,
    free_port,
    make_settings,
)

LEAD, DBA, DEVOPS, BOB, CAROL = "ULEAD", "UDBA", "SDEVOPS", "UBOB", "UCAROL"
LEVELS = [
    {"name": "DevOps Lead", "after_minutes": 0, "mention": [LEAD, DEVOPS]},
    {"name": "Database Admin", "after_minutes": 15, "mention": [DBA]},
    {"name": "Provider support", "after_minutes": 30, "provider_support": True},
]
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
WRONG_PASSWORD_ERROR = "The database refused the password; fix the URL's password."


def _settings(
    state_url: str,
    tmp_path: Path,
    url: str,
    *,
    provider: str = "neon",
    levels: list[dict[str, Any]] | None = None,
) -> Any:
    return make_settings(
        state_url=state_url,
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=[{"name": "app", "url": url, "provider": provider}],
        extra={"escalation": {"levels": levels or LEVELS}},
    )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def pg_state_url(pg: Any) -> Iterator[str]:
    name = f"state_{secrets.token_hex(4)}"
    url = pg.create_database(name)
    yield url.replace("postgresql://", "postgresql+psycopg://", 1)
    pg.drop_database(name)


def _fail(
    services: Any,
    at: datetime,
    *,
    error: str = WRONG_PASSWORD_ERROR,
    error_type: str = "DatabaseUnreachable",
    database: str = "app",
) -> str:
    """A failed attempt as BackupService records one: catalog row and `backup.failed`."""
    record = services.catalog.start(database, "scheduler", None, "local", at)
    services.catalog.fail(record.id, at + timedelta(seconds=30), error)
    services.incidents.record(
        at=at + timedelta(seconds=30),
        actor="scheduler",
        action="backup.failed",
        outcome="failed",
        database=database,
        backup_id=record.id,
        details={"error": error, "error_type": error_type},
    )
    return str(record.id)


def _succeed(services: Any, at: datetime, database: str = "app") -> str:
    record = services.catalog.start(database, "scheduler", None, "local", at)
    details = SuccessDetails(
        artifact_key=f"{database}/{record.id}.dump.zst",
        manifest_key=f"{database}/{record.id}.manifest.json",
        location=f"/backups/{database}/{record.id}.dump.zst",
        raw_size=2048,
        stored_size=512,
        sha256="ab" * 32,
        compression="zstd",
        server_version="16.4",
        pg_dump_version="pg_dump (PostgreSQL) 16.4",
        manifest={},
    )
    assert services.catalog.succeed(record.id, at + timedelta(minutes=1), details)
    return str(record.id)


def _flow(bot: Any) -> AlertFlow:
    return Flows(bot.services, bot.services.slack_client).alert


def _alert_messages(bot: Any) -> list[Any]:
    return [
        m
        for m in bot.standin.messages(CHANNEL)
        if m.thread_ts is None and m.text.startswith("Alert")
    ]


def _replies(bot: Any, ts: str) -> list[Any]:
    return [m for m in bot.standin.thread(CHANNEL, ts) if m.ts != ts]


def _dms(bot: Any, user: str) -> list[Any]:
    return bot.standin.messages(user)


def _incidents(bot: Any, action: str) -> list[Any]:
    return [i for i in reversed(bot.services.incidents.recent(500)) if i.action == action]


def _has_ack_button(message: Any) -> bool:
    return any(
        e.get("action_id") == alert_blocks.ACK_ACTION
        for b in message.blocks
        if b["type"] == "actions"
        for e in b["elements"]
    )


def test_escalation_fires_each_level_once_at_its_minute_in_the_thread_and_by_dm(
    pg: Any, sample_db: dict[str, Any], state_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(T0)
    url = pg.url(sample_db["name"], password="definitely-wrong")
    bot = bot_factory(_settings(state_url, tmp_path, url), clock)
    failed = bot.services.backups.backup_now("app", "scheduler")  # the real thing, fast
    assert failed.status == "failed"
    flow = _flow(bot)

    first = flow.step(clock.now())
    assert [a.condition for a in first.opened] == [BACKUP_FAILED]
    [alert_msg] = _alert_messages(bot)
    body = json.dumps(alert_msg.blocks)
    assert "Backup failed" in body and "`app`" in body and failed.id in body
    assert PG_PASSWORD not in body and "definitely-wrong" not in body
    assert _has_ack_button(alert_msg)
    [ping1] = _replies(bot, alert_msg.ts)
    assert "DevOps Lead" in ping1.text
    assert f"<@{LEAD}>" in ping1.text and f"<!subteam^{DEVOPS}>" in ping1.text
    assert "Database Admin" in json.dumps(ping1.blocks)  # says who is next
    [dm] = _dms(bot, LEAD)
    assert "DevOps Lead" in dm.text and "Backup failed" in dm.text
    assert "standin.slack.com/archives" in json.dumps(dm.blocks)  # links the alert
    assert _dms(bot, DBA) == []

    clock.advance(minutes=14)
    quiet = flow.step(clock.now())
    assert quiet.pings == [] and len(_replies(bot, alert_msg.ts)) == 1

    clock.advance(minutes=1)  # 15 min
    flow.step(clock.now())
    replies = _replies(bot, alert_msg.ts)
    assert len(replies) == 2 and "Database Admin" in replies[1].text
    assert f"<@{DBA}>" in replies[1].text and f"<@{LEAD}>" not in replies[1].text
    assert len(_dms(bot, DBA)) == 1 and len(_dms(bot, LEAD)) == 1

    clock.advance(minutes=14)
    flow.step(clock.now())
    assert len(_replies(bot, alert_msg.ts)) == 2

    clock.advance(minutes=1)  # 30 min
    flow.step(clock.now())
    replies = _replies(bot, alert_msg.ts)
    assert len(replies) == 3 and "Provider support" in replies[2].text
    assert "https://neon.tech/docs/support" in replies[2].text
    assert "last level" in json.dumps(replies[2].blocks)

    clock.advance(hours=3)
    flow.step(clock.now())
    assert len(_replies(bot, alert_msg.ts)) == 3 and len(_alert_messages(bot)) == 1

    pings = _incidents(bot, "alert.ping")
    assert [p.details["level"] for p in pings] == [
        "DevOps Lead",
        "Database Admin",
        "Provider support",
    ]
    assert pings[0].details["dms"] == [LEAD] and pings[0].details["mentions"] == [LEAD, DEVOPS]
    assert pings[2].details["provider_contact"].endswith("https://neon.tech/docs/support")
    assert [p.at for p in pings] == [T0, T0 + timedelta(minutes=15), T0 + timedelta(minutes=30)]
    [opened] = _incidents(bot, "alert.opened")
    assert opened.database == "app" and opened.details["condition"] == BACKUP_FAILED
    assert PG_PASSWORD not in json.dumps([i.as_json() for i in bot.services.incidents.recent(50)])


def test_acknowledge_click_stops_the_pings_records_who_and_a_second_click_is_refused(
    state_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(T0)
    bot = bot_factory(_settings(state_url, tmp_path, "postgresql://u:p@127.0.0.1:9/app"), clock)
    bot.standin.set_usergroup(DEVOPS, [BOB])  # level 1 names the group
    _fail(bot.services, T0 - timedelta(minutes=1))
    flow = _flow(bot)
    flow.step(clock.now())
    [alert] = bot.services.alerts.open_alerts()
    assert alert.message_ts is not None and alert.channel == CHANNEL

    clock.advance(minutes=5)
    url = bot.standin.new_response_url()
    resp = bot.signer.block_action(
        BOB, alert_blocks.ACK_ACTION, alert.id, CHANNEL, alert.message_ts, response_url=url
    )
    assert resp.status == 200
    bot.wait_idle()
    assert bot.standin.response_posts(url) == []  # no complaint for the first click

    [acked] = bot.services.alerts.open_alerts()
    assert acked.acknowledged_by == BOB and acked.acknowledged_at == T0 + timedelta(minutes=5)
    msg = bot.standin.message(CHANNEL, alert.message_ts)
    assert f"Acknowledged by <@{BOB}>" in json.dumps(msg.blocks)
    assert "2026-11-24 02:05 UTC" in json.dumps(msg.blocks)
    assert not _has_ack_button(msg)
    assert any(
        f"<@{BOB}> acknowledged" in json.dumps(r.blocks) for r in _replies(bot, alert.message_ts)
    )
    [record] = _incidents(bot, "alert.acknowledged")
    assert record.actor == BOB and record.details["alert_id"] == alert.id

    clock.advance(minutes=50)  # past every level, within the acknowledgement timeout
    step = flow.step(clock.now())
    assert step.pings == []
    assert [p.details["level"] for p in _incidents(bot, "alert.ping")] == ["DevOps Lead"]
    assert _dms(bot, DBA) == []

    url2 = bot.standin.new_response_url()
    bot.signer.block_action(
        CAROL, alert_blocks.ACK_ACTION, alert.id, CHANNEL, alert.message_ts, response_url=url2
    )
    bot.wait_idle()
    [answer] = bot.standin.response_posts(url2)
    assert answer.body["response_type"] == "ephemeral"
    assert f"<@{BOB}> already acknowledged" in json.dumps(answer.body)
    assert bot.services.alerts.get(alert.id).acknowledged_by == BOB
    assert [r.actor for r in _incidents(bot, "alert.ack_refused")] == [CAROL]


def test_a_later_successful_backup_resolves_the_alert_and_posts_the_resolution(
    sample_db: dict[str, Any], state_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(T0)
    bot = bot_factory(_settings(state_url, tmp_path, sample_db["url"]), clock)
    bot.standin.set_usergroup(DEVOPS, [BOB])
    _fail(bot.services, T0 - timedelta(minutes=2))
    flow = _flow(bot)
    flow.step(clock.now())
    [alert] = bot.services.alerts.open_alerts()
    assert alert.message_ts is not None
    bot.services.alerts.acknowledge(alert.id, BOB, clock.now())  # acked alerts still resolve

    clock.advance(minutes=20)
    good = bot.services.backups.backup_now("app", "scheduler")
    assert good.status == "succeeded", good.error
    step = flow.step(clock.now())
    assert [a.id for a in step.resolved] == [alert.id]
    assert [a.id for a in step.resolutions_posted] == [alert.id]

    resolved = bot.services.alerts.get(alert.id)
    assert resolved.status == "resolved" and resolved.resolved_at == clock.now()
    assert f"backup {good.id}" in (resolved.resolution or "") and "succeeded" in resolved.resolution
    assert bot.services.alerts.open_alerts() == []
    msg = bot.standin.message(CHANNEL, alert.message_ts)
    body = json.dumps(msg.blocks)
    assert "Resolved" in body and good.id in body and f"<@{BOB}>" in body
    assert not _has_ack_button(msg)
    last = _replies(bot, alert.message_ts)[-1]
    assert "Resolved" in last.text and good.id in last.text
    [record] = _incidents(bot, "alert.resolved")
    assert record.details["alert_id"] == alert.id and good.id in record.details["resolution"]
    assert record.details["acknowledged_by"] == BOB

    url = bot.standin.new_response_url()
    bot.signer.block_action(
        CAROL, alert_blocks.ACK_ACTION, alert.id, CHANNEL, alert.message_ts, response_url=url
    )
    bot.wait_idle()
    [answer] = bot.standin.response_posts(url)
    assert answer.body["response_type"] == "ephemeral" and "already resolved" in answer.body["text"]

    clock.advance(minutes=60)
    again = flow.step(clock.now())
    assert again.resolutions_posted == [] and again.pings == [] and again.opened == []
    assert len(_incidents(bot, "alert.resolved")) == 1

    # The same condition failing again later is a new alert.
    _fail(bot.services, clock.now())
    flow.step(clock.now())
    assert len(_alert_messages(bot)) == 2 and len(bot.services.alerts.open_alerts()) == 1


def test_repeated_steps_give_one_alert_and_one_ping_per_level(
    sqlite_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(T0)
    bot = bot_factory(_settings(sqlite_url, tmp_path, "postgresql://u:p@127.0.0.1:9/app"), clock)
    _fail(bot.services, T0 - timedelta(hours=1))
    _fail(bot.services, T0 - timedelta(minutes=10))  # a second failure: still one alert
    flow = _flow(bot)
    for minute in (0, 0, 0, 15, 15, 16, 30, 31, 45):
        clock.advance(minutes=minute - (clock.now() - T0).total_seconds() / 60)
        flow.step(clock.now())
    assert len(_alert_messages(bot)) == 1
    [alert] = bot.services.alerts.open_alerts()
    assert len(_replies(bot, alert.message_ts)) == 3 and alert.levels_fired == 3
    assert len(_incidents(bot, "alert.opened")) == 1 and len(_incidents(bot, "alert.ping")) == 3
    assert "2 attempts have failed" in alert.summary


def test_after_the_bot_was_down_each_overdue_level_fires_once(
    sqlite_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(T0)
    bot = bot_factory(_settings(sqlite_url, tmp_path, "postgresql://u:p@127.0.0.1:9/app"), clock)
    _fail(bot.services, T0)
    flow = _flow(bot)
    flow.step(clock.now())
    clock.advance(hours=5)  # the bot was down: levels 2 and 3 are overdue
    step = flow.step(clock.now())
    assert [p.name for p in step.pings] == ["Database Admin", "Provider support"]
    assert all(p.late for p in step.pings)
    flow.step(clock.advance(minutes=1))
    [alert] = bot.services.alerts.open_alerts()
    replies = _replies(bot, alert.message_ts)
    assert len(replies) == 3 and "sent late" in json.dumps(replies[1].blocks)


def test_two_bot_processes_on_one_postgresql_state_database_open_and_ping_once(
    pg_state_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(T0)
    settings = _settings(pg_state_url, tmp_path, "postgresql://u:p@127.0.0.1:9/app")
    bots = [bot_factory(settings, clock), bot_factory(settings, clock)]
    _fail(bots[0].services, T0 - timedelta(minutes=1))
    flows = [_flow(b) for b in bots]

    def race() -> None:
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def run(flow: AlertFlow) -> None:
            try:
                barrier.wait(timeout=30)
                for _ in range(3):
                    flow.step(clock.now())
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(f,)) for f in flows + flows]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []

    race()
    clock.advance(minutes=15)
    race()
    clock.advance(minutes=15)
    race()

    assert len(_alert_messages(bots[0])) == 1
    [alert] = bots[1].services.alerts.open_alerts()
    replies = _replies(bots[0], alert.message_ts)
    assert [r.blocks[0]["text"]["text"].split("*")[1] for r in replies] == [
        "DevOps Lead",
        "Database Admin",
        "Provider support",
    ]
    assert len(_dms(bots[0], LEAD)) == 1 and len(_dms(bots[0], DBA)) == 1
    assert len(_incidents(bots[0], "alert.opened")) == 1
    assert len(_incidents(bots[0], "alert.ping")) == 3


def test_stale_detection_judges_the_newest_verified_backup_and_never_backed_up_databases(
    state_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(T0)
    bot = bot_factory(_settings(state_url, tmp_path, "postgresql://u:p@127.0.0.1:9/app"), clock)
    services = bot.services
    check = BackupConditions(
        BackupFacts(services.engine), {"app": timedelta(hours=26), "other": timedelta(hours=26)}
    )

    assert check.check(T0) == []  # nothing recorded yet: not judged
    services.incidents.record(
        at=T0, actor="scheduler", action="backup.started", outcome="ok", database="other"
    )
    assert check.check(T0 + timedelta(hours=26)) == []
    [never] = check.check(T0 + timedelta(hours=27))
    assert never.condition == STALE and never.database == "other"
    assert "never had a verified backup" in str(never.summary)

    _succeed(services, T0)
    assert [f.database for f in check.check(T0 + timedelta(hours=25))] == []
    stale = [f for f in check.check(T0 + timedelta(hours=27)) if f.database == "app"]
    assert [f.condition for f in stale] == [STALE]
    assert "last 26 h" in str(stale[0].summary) and "/backup now app" in str(stale[0].summary)

    # Through the service: the stale alert opens, and a fresh verified backup resolves it.
    flow = _flow(bot)
    clock.advance(hours=27)
    flow.step(clock.now())
    [alert] = services.alerts.open_alerts()
    assert alert.condition == STALE and alert.database == "app"
    fresh = _succeed(services, clock.now())
    step = flow.step(clock.advance(minutes=5))
    assert [a.id for a in step.resolved] == [alert.id]
    assert fresh in (services.alerts.get(alert.id).resolution or "")


def test_verification_failure_is_its_own_alert_and_running_backups_do_not_count(
    state_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(T0)
    bot = bot_factory(_settings(state_url, tmp_path, "postgresql://u:p@127.0.0.1:9/app"), clock)
    services = bot.services
    check = BackupConditions(BackupFacts(services.engine), {"app": timedelta(hours=26)})
    _succeed(services, T0 - timedelta(hours=2))
    assert check.check(T0) == []

    running = services.catalog.start("app", "scheduler", None, "local", T0)
    assert check.check(T0) == []  # a running attempt is not a failure
    services.catalog.fail(running.id, T0, "The stored copy's SHA-256 did not match; not kept.")
    services.incidents.record(
        at=T0,
        actor="scheduler",
        action="backup.failed",
        outcome="failed",
        database="app",
        backup_id=running.id,
        details={"error": "sha mismatch", "error_type": "VerificationFailed"},
    )
    [finding] = check.check(T0)
    assert finding.condition == VERIFICATION_FAILED and running.id in str(finding.summary)
    assert "failed verification" in str(finding.summary)

    _fail(services, T0 + timedelta(hours=1))  # then a connection failure: both are open
    assert sorted(f.condition for f in check.check(T0 + timedelta(hours=1))) == [
        BACKUP_FAILED,
        VERIFICATION_FAILED,
    ]
    services.catalog.start("app", "scheduler", None, "local", T0 + timedelta(hours=2))
    assert len(check.check(T0 + timedelta(hours=2))) == 2  # still: the new one is running

    flow = _flow(bot)
    clock.advance(hours=2)
    flow.step(clock.now())
    titles = sorted(m.text.split(":")[0] for m in _alert_messages(bot))
    # and, at 04:00, the 02:00 firing's 2 h grace has run out with no verified backup: stale
    assert titles == ["Alert (app), open"] * 3
    shown = json.dumps([m.blocks for m in _alert_messages(bot)])
    assert "Backup failed verification" in shown and "No recent verified backup" in shown


def test_an_alert_slack_could_not_take_is_kept_and_posted_on_the_next_step(
    sqlite_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(T0)
    bot = bot_factory(_settings(sqlite_url, tmp_path, "postgresql://u:p@127.0.0.1:9/app"), clock)
    _fail(bot.services, T0)
    down = WebClient(token=BOT_TOKEN, base_url=f"http://127.0.0.1:{free_port()}/api/")
    down.retry_handlers = []
    step = Flows(bot.services, down).alert.step(clock.now())
    assert len(step.opened) == 1 and step.posted == [] and step.pings == [] and step.retry == 1
    [alert] = bot.services.alerts.open_alerts()
    assert alert.message_ts is None and alert.levels_fired == 0
    assert bot.standin.messages(CHANNEL) == []

    clock.advance(minutes=20)  # Slack is back 20 minutes later
    step = _flow(bot).step(clock.now())
    assert [a.id for a in step.posted] == [alert.id]
    assert [p.name for p in step.pings] == ["DevOps Lead", "Database Admin"]
    [msg] = _alert_messages(bot)
    assert len(_replies(bot, msg.ts)) == 2

    # A ping Slack does not take gives its level back; the next step fires it.
    clock.advance(minutes=15)
    step = Flows(bot.services, down).alert.step(clock.now())
    assert step.pings == [] and bot.services.alerts.get(alert.id).levels_fired == 2
    step = _flow(bot).step(clock.now())
    assert [p.name for p in step.pings] == ["Provider support"]

    # A resolution Slack does not take is shown on the next step.
    _succeed(bot.services, clock.now())
    step = Flows(bot.services, down).alert.step(clock.advance(minutes=1))
    assert [a.id for a in step.resolved] == [alert.id] and step.resolutions_posted == []
    assert _has_ack_button(bot.standin.message(CHANNEL, msg.ts))
    step = _flow(bot).step(clock.advance(minutes=1))
    assert [a.id for a in step.resolutions_posted] == [alert.id]
    assert not _has_ack_button(bot.standin.message(CHANNEL, msg.ts))
    assert len(_incidents(bot, "alert.resolved")) == 1 and len(_incidents(bot, "alert.ping")) == 3


class _FakeCheck:
    """A condition check whose findings the test sets; raises when `broken`."""

    def __init__(self, condition: str, database: str | None) -> None:
        self.conditions = (condition,)
        self.findings: list[Finding] = []
        self.broken = False
        self._condition, self._database = condition, database

    def hold(self, summary: str) -> None:
        self.findings = [Finding(self._condition, self._database, summary, {"n": 1})]

    def check(self, now: datetime) -> list[Finding]:
        if self.broken:
            raise RuntimeError("the drill table is unreadable")
        return list(self.findings)


def test_levels_with_nobody_unlisted_providers_and_global_alerts_say_so_plainly(
    sqlite_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(T0)
    levels = [
        {"name": "DevOps Lead", "after_minutes": 0},
        {"name": "Provider support", "after_minutes": 30, "provider_support": True},
    ]
    settings = _settings(
        sqlite_url, tmp_path, "postgresql://u:p@127.0.0.1:9/app", provider="generic", levels=levels
    )
    bot = bot_factory(settings, clock)
    checklist = _FakeCheck(CHECKLIST_OVERDUE, None)
    bot.services.alerts.add_check(checklist)
    checklist.hold("The 2026-11 checklist is not signed off 4 days after it was posted.")
    _fail(bot.services, T0)
    flow = _flow(bot)
    flow.step(clock.now())
    flow.step(clock.advance(minutes=30))

    by_db = {a.database: a for a in bot.services.alerts.open_alerts()}
    app_replies = _replies(bot, by_db["app"].message_ts)
    assert "escalation.levels[0].mention" in app_replies[0].text  # how to configure it
    assert "no support contact for generic databases" in app_replies[1].text
    global_replies = _replies(bot, by_db[None].message_ts)
    assert "not about one database" in global_replies[1].text
    assert "generic" not in global_replies[1].text
    assert "Monthly checklist overdue" in json.dumps(
        bot.standin.message(CHANNEL, by_db[None].message_ts).blocks
    )

    # A check that fails leaves its alert alone; once it answers again, a cleared
    # condition resolves.
    checklist.broken = True
    step = flow.step(clock.advance(minutes=1))
    assert step.resolved == [] and by_db[None].id in {
        a.id for a in bot.services.alerts.open_alerts()
    }
    checklist.broken, checklist.findings = False, []
    step = flow.step(clock.advance(minutes=1))
    assert [a.id for a in step.resolved] == [by_db[None].id]
    assert "No longer found" in (bot.services.alerts.get(by_db[None].id).resolution or "")


def test_alert_message_stays_within_slack_limits_with_a_very_long_summary() -> None:
    from backupbot.settings import EscalationLevel
    from backupbot.storage.alerts import AlertRecord

    alert = AlertRecord(
        id="a1234abcd",
        condition=BACKUP_FAILED,
        database="app",
        status="open",
        summary="x" * 5000,
        details={},
        opened_at=T0,
        levels_fired=0,
        acknowledged_by=None,
        acknowledged_at=None,
        resolved_at=None,
        resolution=None,
        channel=None,
        message_ts=None,
    )
    from backupbot.devkit.slack_standin import block_kit_errors

    message = alert_blocks.alert_message(alert, [EscalationLevel(name="DevOps Lead")])
    assert block_kit_errors(message.blocks) == []
    assert len(message.text) <= 3000


def test_an_acknowledge_landing_while_the_alert_is_posted_still_shows_on_the_message(
    sqlite_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    """Found by the acceptance suite's race: a click between the post and its record."""

    clock = ManualClock(T0)
    bot = bot_factory(_settings(sqlite_url, tmp_path, "postgresql://u:p@127.0.0.1:1/app"), clock)
    _fail(bot.services, T0)
    bot.services.alerts.evaluate(T0)
    [alert] = bot.services.alerts.open_alerts()

    fast = clicked_while_posting(
        bot, lambda _message: bot.services.alerts.acknowledge(alert.id, BOB, T0)
    )
    [posted], _failed = Flows(bot.services, fast).alert.post_new(T0)

    assert posted.acknowledged_by == BOB
    message = bot.standin.message(CHANNEL, posted.message_ts)
    assert [b for b in message.blocks if b["type"] == "actions"] == []
    assert "Acknowledged by <@UBOB>" in json.dumps(message.blocks)


def test_a_month_without_a_passed_drill_alerts_until_a_drill_passes(
    sample_db: dict[str, Any], sqlite_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(T0)
    bot = bot_factory(_settings(sqlite_url, tmp_path, sample_db["url"]), clock)
    flow = _flow(bot)
    assert bot.services.backups.backup_now("app", "scheduler").status == "succeeded"
    clock.advance(days=20)
    assert bot.services.backups.backup_now("app", "scheduler").status == "succeeded"
    flow.step(clock.now())
    assert bot.services.alerts.open_alerts() == []  # 20 days: the drill is not missed yet

    clock.advance(days=16)  # 36 days after the first backup, never drilled
    step = flow.step(clock.now())  # (the daily backups are overdue too: `stale`)
    [alert] = [a for a in step.opened if a.condition == "drill_missing"]
    assert alert.database == "app"
    posted = bot.services.alerts.get(alert.id)
    msg = bot.standin.message(CHANNEL, posted.message_ts or "")
    assert msg.text.startswith("Alert (app), open: No passed restore drill")
    assert "/backup drill app" in json.dumps(msg.blocks)

    assert bot.services.drills.run("app", "scheduler").status == "passed"
    done = flow.step(clock.now())
    assert [a.id for a in done.resolved] == [alert.id]
    assert "drill_missing" not in [a.condition for a in bot.services.alerts.open_alerts()]


def test_render_has_its_support_link() -> None:
    assert provider_contact("render") == "Render support: https://render.com/docs/support"
