"""Restores over signed HTTP: `/backup restore` posts a request, a second person's click
starts it, and the restored database is verified; every refused click changes nothing."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backupbot.bot.slack.blocks import restore as restore_blocks
from backupbot.bot.slack.flows import Flows
from backupbot.devkit.sample_data import database_fingerprint, load_sample_data
from tests.conftest import PG_PASSWORD, ManualClock, clicked_while_posting, free_port, make_settings

ALICE, BOB, CAROL, DAVE, EVE = "UALICE", "UBOB", "UCAROL", "UDAVE", "UEVE"
APPROVERS = [ALICE, BOB, CAROL, DAVE]  # the requester is listed too: still cannot self-approve


@pytest.fixture
def source(pg: Any) -> Iterator[dict[str, Any]]:
    """A private copy of the sample database this test may change."""
    name = f"src_{secrets.token_hex(3)}"
    url = pg.create_database(name)
    counts = load_sample_data(url)
    yield {"name": name, "url": url, "counts": counts}
    pg.drop_database(name)


@pytest.fixture
def targets(pg: Any) -> Iterator[list[str]]:
    """Names of databases a test restores into; dropped afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        pg.drop_database(name)


def _settings(state_url: str, storage: dict[str, Any], url: str, **extra: Any) -> Any:
    db = {"name": "app", "url": url, **extra.pop("db", {})}
    settings = make_settings(
        state_url=state_url, storage=storage, databases=[db], extra=extra or None
    )
    slack = settings.slack.model_copy(update={"approvers": APPROVERS})
    return settings.model_copy(update={"slack": slack})


def _local(tmp_path: Path) -> dict[str, Any]:
    return {"local": {"path": str(tmp_path / "backups")}}


def _request(bot: Any, text: str) -> Any:
    """Send `/backup restore ...` as Alice; the request record (or None) and her answer."""
    before = {r.id for r in bot.services.restores.recent(limit=100)}
    resp = bot.signer.slash_command(ALICE, text)
    assert resp.status == 200
    bot.wait_idle()
    created = [r for r in bot.services.restores.recent(limit=100) if r.id not in before]
    answer = bot.standin.response_posts()[-1].body
    return (created[0] if created else None), answer


def _click(bot: Any, user: str, action_id: str, record: Any) -> dict[str, Any] | None:
    """Click a button on the request message; the ephemeral answer, if any."""
    posts_before = len(bot.standin.response_posts())
    url = bot.standin.new_response_url()
    resp = bot.signer.block_action(
        user, action_id, record.id, record.channel, record.message_ts, response_url=url
    )
    assert resp.status == 200
    bot.wait_idle()
    posts = bot.standin.response_posts(url)
    assert len(bot.standin.response_posts()) == posts_before + len(posts)
    return posts[-1].body if posts else None


def _actions_of(bot: Any, record: Any) -> list[dict[str, Any]]:
    msg = bot.standin.message(record.channel, record.message_ts)
    return [b for b in msg.blocks if b["type"] == "actions"]


def _incidents(bot: Any, restore_id: str) -> list[Any]:
    return [
        i
        for i in reversed(bot.services.incidents.recent(500))
        if i.details.get("restore_id") == restore_id
    ]


def test_two_person_restore_into_a_new_database_is_identical_and_reported_against_the_rto(
    pg: Any,
    source: dict[str, Any],
    state_url: str,
    bucket: str,
    s3_endpoint: str,
    bot_factory: Any,
    targets: list[str],
) -> None:
    storage = {"s3": {"bucket": bucket, "endpoint_url": s3_endpoint, "region": "us-east-1"}}
    bot = bot_factory(_settings(state_url, storage, source["url"]))
    backup = bot.services.backups.backup_now("app", ALICE)

    record, answer = _request(bot, 'restore app latest --reason "check last night\'s data"')
    assert record is not None, answer
    targets.append(record.target_db)
    assert record.target_db.startswith("app_restored_") and record.mode == "new"
    assert record.backup_id == backup.id and record.status == "pending"
    assert record.id in answer["text"] and "approval" in answer["text"]

    request_msg = bot.standin.message(record.channel, record.message_ts)
    body = json.dumps(request_msg.blocks)
    assert backup.id in body and "check last night's data" in body and "<@UALICE>" in body
    assert "will be created" in body and PG_PASSWORD not in body
    [actions] = _actions_of(bot, record)
    assert [e["action_id"] for e in actions["elements"]] == [
        restore_blocks.APPROVE_ACTION,
        restore_blocks.DENY_ACTION,
        restore_blocks.CANCEL_ACTION,
    ]
    assert all("confirm" in e for e in actions["elements"][:2])

    assert _click(bot, BOB, restore_blocks.APPROVE_ACTION, record) is None

    done = bot.services.restores.get(record.id)
    assert done.status == "succeeded", done.error
    assert database_fingerprint(pg.url(record.target_db)) == database_fingerprint(source["url"])
    final = bot.standin.message(record.channel, record.message_ts)
    assert _actions_of(bot, record) == []
    assert "Restored and verified" in json.dumps(final.blocks)
    assert "Approved by <@UBOB>" in json.dumps(final.blocks)
    thread = bot.standin.thread(record.channel, record.message_ts)
    report = thread[-1]
    assert "Recovered in" in report.text and "RTO target 30 min" in report.text
    assert any("SHA-256 matches" in m.text for m in thread)
    assert set(done.result["timings"]) >= {"download", "create", "restore", "verify"}

    actions = [i.action for i in _incidents(bot, record.id)]
    assert actions == [
        "restore.requested",
        "restore.approved",
        "restore.started",
        "restore.verified",
        "restore.succeeded",
    ]
    succeeded = _incidents(bot, record.id)[-1]
    assert succeeded.details["rto_minutes"] == 30 and succeeded.details["within_rto"] is True


@pytest.mark.parametrize(
    ("clicker", "action_id", "expect"),
    [
        (ALICE, restore_blocks.APPROVE_ACTION, "You asked for this restore"),
        (ALICE, restore_blocks.DENY_ACTION, "You asked for this restore"),
        (EVE, restore_blocks.APPROVE_ACTION, "not one of this channel's restore approvers"),
        (EVE, restore_blocks.DENY_ACTION, "not one of this channel's restore approvers"),
        (BOB, restore_blocks.CANCEL_ACTION, "Only the person who asked"),
    ],
)
def test_clicks_that_are_not_allowed_get_an_explanation_a_record_and_change_nothing(
    source: dict[str, Any],
    tmp_path: Path,
    bot_factory: Any,
    clicker: str,
    action_id: str,
    expect: str,
) -> None:
    bot = bot_factory(_settings(f"sqlite:///{tmp_path}/s.db", _local(tmp_path), source["url"]))
    bot.services.backups.backup_now("app", ALICE)
    record, _ = _request(bot, "restore app latest --into app_copy")
    before = bot.standin.message(record.channel, record.message_ts)
    versions = len(before.history)

    answer = _click(bot, clicker, action_id, record)

    assert answer is not None and expect in answer["text"]
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    assert bot.services.restores.get(record.id).status == "pending"
    after = bot.standin.message(record.channel, record.message_ts)
    assert len(after.history) == versions and after.blocks == before.blocks
    refused = _incidents(bot, record.id)[-1]
    assert refused.action == "restore.click_refused" and refused.actor == clicker
    assert expect in refused.details["reason"]


def test_a_denied_request_restores_nothing_and_later_clicks_are_refused(
    pg: Any, source: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    bot = bot_factory(_settings(f"sqlite:///{tmp_path}/s.db", _local(tmp_path), source["url"]))
    bot.services.backups.backup_now("app", ALICE)
    record, _ = _request(bot, "restore app latest --into app_never")

    assert _click(bot, BOB, restore_blocks.DENY_ACTION, record) is None
    assert bot.services.restores.get(record.id).status == "denied"
    assert _actions_of(bot, record) == []
    text = json.dumps(bot.standin.message(record.channel, record.message_ts).blocks)
    assert "Denied* by <@UBOB>" in text and "Nothing was restored" in text

    answer = _click(bot, CAROL, restore_blocks.APPROVE_ACTION, record)
    assert answer is not None and "already denied by <@UBOB>" in json.dumps(answer)
    assert bot.services.restores.get(record.id).status == "denied"
    with pytest.raises(Exception, match="does not exist"):
        pg.execute("SELECT 1", dbname="app_never")


def test_the_requester_can_cancel_and_the_target_is_free_again(
    source: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    bot = bot_factory(_settings(f"sqlite:///{tmp_path}/s.db", _local(tmp_path), source["url"]))
    bot.services.backups.backup_now("app", ALICE)
    record, _ = _request(bot, "restore app latest --into app_copy2")

    second, answer = _request(bot, "restore app latest --into app_copy2")
    assert second is None and "already pending approval" in answer["text"]

    assert _click(bot, ALICE, restore_blocks.CANCEL_ACTION, record) is None
    assert bot.services.restores.get(record.id).status == "cancelled"
    assert "Cancelled* by <@UALICE>" in json.dumps(
        bot.standin.message(record.channel, record.message_ts).blocks
    )
    third, _ = _request(bot, "restore app latest --into app_copy2")
    assert third is not None and third.status == "pending"


def test_requests_expire_the_buttons_go_and_a_late_click_is_told_so(
    source: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock()
    settings = _settings(f"sqlite:///{tmp_path}/s.db", _local(tmp_path), source["url"])
    bot = bot_factory(settings, clock)
    bot.services.backups.backup_now("app", ALICE)
    swept, _ = _request(bot, "restore app latest --into app_a")
    clicked, _ = _request(bot, "restore app latest --into app_b")

    clock.advance(minutes=29)
    assert bot.flow.expire_due() == []
    clock.advance(minutes=2)

    expired = bot.flow.expire_due()
    assert [r.id for r in expired] == [swept.id, clicked.id] or {r.id for r in expired} == {
        swept.id,
        clicked.id,
    }
    for record in (swept, clicked):
        assert bot.services.restores.get(record.id).status == "expired"
        assert _actions_of(bot, record) == []
        assert "Expired" in json.dumps(
            bot.standin.message(record.channel, record.message_ts).blocks
        )
    answer = _click(bot, BOB, restore_blocks.APPROVE_ACTION, clicked)
    assert answer is not None and "already expired" in answer["text"]
    assert [i.action for i in _incidents(bot, clicked.id)][-2:] == [
        "restore.expired",
        "restore.click_refused",
    ]


def test_a_click_after_expiry_closes_the_request_even_before_the_sweep(
    source: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock()
    settings = _settings(f"sqlite:///{tmp_path}/s.db", _local(tmp_path), source["url"])
    bot = bot_factory(settings, clock)
    bot.services.backups.backup_now("app", ALICE)
    record, _ = _request(bot, "restore app latest --into app_late")
    clock.advance(minutes=31)

    answer = _click(bot, BOB, restore_blocks.APPROVE_ACTION, record)

    assert answer is not None and "expired" in answer["text"]
    assert bot.services.restores.get(record.id).status == "expired"
    assert _actions_of(bot, record) == []


def test_three_simultaneous_approvals_start_exactly_one_restore(
    pg: Any, source: dict[str, Any], tmp_path: Path, bot_factory: Any, targets: list[str]
) -> None:
    state = f"state_{secrets.token_hex(3)}"
    state_url = pg.create_database(state).replace("postgresql://", "postgresql+psycopg://", 1)
    targets.append(state)
    bot = bot_factory(_settings(state_url, _local(tmp_path), source["url"]))
    bot.services.backups.backup_now("app", ALICE)
    record, _ = _request(bot, "restore app latest --into app_race")
    targets.append("app_race")

    barrier = threading.Barrier(3)
    answers: dict[str, Any] = {}

    def click(user: str) -> None:
        url = bot.standin.new_response_url()
        barrier.wait()
        bot.signer.block_action(
            user,
            restore_blocks.APPROVE_ACTION,
            record.id,
            record.channel,
            record.message_ts,
            response_url=url,
        )
        answers[user] = url

    threads = [threading.Thread(target=click, args=(u,)) for u in (BOB, CAROL, DAVE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bot.wait_idle()

    final = bot.services.restores.get(record.id)
    assert final.status == "succeeded", final.error
    incidents = _incidents(bot, record.id)
    assert [i.action for i in incidents].count("restore.started") == 1
    assert [i.action for i in incidents].count("restore.approved") == 1
    refused = [i for i in incidents if i.action == "restore.click_refused"]
    assert len(refused) == 2 and {i.details["code"] for i in refused} == {"decided"}
    winner = final.decided_by
    losers = {BOB, CAROL, DAVE} - {winner}
    for user in losers:
        [post] = bot.standin.response_posts(answers[user])
        assert "already approved" in post.body["text"]
    reports = [
        m for m in bot.standin.thread(record.channel, record.message_ts) if "Recovered in" in m.text
    ]
    assert len(reports) == 1


def test_racing_approvals_in_threads_against_postgresql_state_move_the_request_once(
    pg: Any, source: dict[str, Any], tmp_path: Path, bot_factory: Any, targets: list[str]
) -> None:
    state = f"state_{secrets.token_hex(3)}"
    state_url = pg.create_database(state).replace("postgresql://", "postgresql+psycopg://", 1)
    targets.append(state)
    settings = _settings(state_url, _local(tmp_path), source["url"])
    slack = settings.slack.model_copy(update={"required_approvals": 2})
    bot = bot_factory(settings.model_copy(update={"slack": slack}))
    bot.services.backups.backup_now("app", ALICE)
    record, _ = _request(bot, "restore app latest --into app_race2")
    service = bot.services.restores

    for round_users in ([BOB, BOB, BOB, CAROL], [DAVE, DAVE, BOB, CAROL]):
        barrier = threading.Barrier(len(round_users))
        outcomes: list[str] = []

        def click(
            user: str, barrier: threading.Barrier = barrier, outcomes: list[str] = outcomes
        ) -> None:
            barrier.wait()
            outcomes.append(service.click(record.id, "approve", user).outcome)

        threads = [threading.Thread(target=click, args=(u,)) for u in round_users]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if "approved" in outcomes:
            break
    current = service.get(record.id)
    assert outcomes.count("approved") <= 1
    assert current.status == "running" and current.approval_count == 2
    assert len(set(current.approvers)) == 2 and ALICE not in current.approvers


def test_a_corrupted_artifact_is_refused_before_the_target_is_touched(
    pg: Any, source: dict[str, Any], tmp_path: Path, bot_factory: Any, targets: list[str]
) -> None:
    bot = bot_factory(_settings(f"sqlite:///{tmp_path}/s.db", _local(tmp_path), source["url"]))
    backup = bot.services.backups.backup_now("app", ALICE)
    artifact = tmp_path / "backups" / backup.artifact_key
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    existing = pg.create_database("app_existing")
    targets.append("app_existing")
    load_sample_data(existing)
    pg.execute('DELETE FROM "UserAction"', dbname="app_existing")
    before = database_fingerprint(existing)

    record, _ = _request(bot, "restore app latest --into app_existing")
    _click(bot, BOB, restore_blocks.APPROVE_ACTION, record)

    final = bot.services.restores.get(record.id)
    assert final.status == "failed"
    assert "SHA-256" in final.error or "corrupt" in final.error
    assert final.result["failed_stage"] == "download"
    assert final.result["target_state"] == "app_existing was not touched"
    assert final.result["safety_backup_id"] is None
    assert database_fingerprint(existing) == before
    assert [b.label for b in bot.services.catalog.recent()] == [None], "no safety backup taken"
    report = bot.standin.thread(record.channel, record.message_ts)[-1]
    assert "Restore failed" in report.text and "was not touched" in report.text


def test_a_verification_mismatch_is_reported_by_table(
    pg: Any, source: dict[str, Any], tmp_path: Path, bot_factory: Any, targets: list[str]
) -> None:
    bot = bot_factory(_settings(f"sqlite:///{tmp_path}/s.db", _local(tmp_path), source["url"]))
    backup = bot.services.backups.backup_now("app", ALICE)
    # The catalog says the backup had more users than the archive holds.
    manifest = dict(backup.manifest)
    manifest["row_counts"] = {**manifest["row_counts"], "public.User": 10**6}
    from sqlalchemy import update

    from backupbot.storage.models import BackupRow

    engine = bot.services.catalog._engine
    with engine.begin() as conn:
        conn.execute(update(BackupRow).where(BackupRow.id == backup.id).values(manifest=manifest))

    record, _ = _request(bot, "restore app latest --into app_mismatch")
    targets.append("app_mismatch")
    _click(bot, BOB, restore_blocks.APPROVE_ACTION, record)

    final = bot.services.restores.get(record.id)
    assert final.status == "failed" and final.result["failed_stage"] == "verify"
    assert "public.User" in final.error and "1000000" in final.error
    assert final.result["mismatches"][0]["table"] == "public.User"
    assert "does not match the backup" in final.result["target_state"]
    report = bot.standin.thread(record.channel, record.message_ts)[-1]
    assert "public.User" in json.dumps(report.blocks)
    verified = [i for i in _incidents(bot, record.id) if i.action == "restore.verified"]
    assert verified[0].outcome == "failed"
    # the schema itself was restored intact: the message is the row counts' alone
    assert verified[0].details["schema"] == "ok" and "schema" not in final.error
    assert final.error.startswith("Verification failed: 1 table(s) differ from the backup:")


def test_a_backup_from_before_schema_fingerprints_is_checked_by_rows_and_says_so(
    pg: Any, source: dict[str, Any], tmp_path: Path, bot_factory: Any, targets: list[str]
) -> None:
    bot = bot_factory(_settings(f"sqlite:///{tmp_path}/s.db", _local(tmp_path), source["url"]))
    backup = bot.services.backups.backup_now("app", ALICE)
    assert backup.manifest["schema"]["format"] == "backupbot-schema/1"
    manifest = {k: v for k, v in backup.manifest.items() if k != "schema"}  # an old manifest
    from sqlalchemy import update

    from backupbot.storage.models import BackupRow

    with bot.services.catalog._engine.begin() as conn:
        conn.execute(update(BackupRow).where(BackupRow.id == backup.id).values(manifest=manifest))

    record, _ = _request(bot, "restore app latest --into app_old_manifest")
    targets.append("app_old_manifest")
    _click(bot, BOB, restore_blocks.APPROVE_ACTION, record)

    final = bot.services.restores.get(record.id)
    assert final.status == "succeeded", final.error
    assert final.result["schema"] == "not recorded"
    [verified] = [i for i in _incidents(bot, record.id) if i.action == "restore.verified"]
    assert verified.outcome == "ok" and verified.details["schema"] == "not recorded"
    assert "no schema fingerprint" in verified.details["schema_note"]
    report = bot.standin.thread(record.channel, record.message_ts)[-1]
    assert "schema not checked" in json.dumps(report.blocks)


def test_an_unreachable_target_server_gets_a_clear_answer_and_no_request(
    pg: Any, source: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    state = f"sqlite:///{tmp_path}/s.db"
    good = bot_factory(_settings(state, _local(tmp_path), source["url"]))
    good.services.backups.backup_now("app", ALICE)
    dead = f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{free_port()}/{source['name']}"
    bot = bot_factory(_settings(state, _local(tmp_path), dead))

    record, answer = _request(bot, "restore app latest --into app_copy")

    assert record is None
    assert "Could not reach the database server" in answer["text"]
    assert PG_PASSWORD not in json.dumps(answer)
    refused = bot.services.incidents.recent(1)[0]
    assert refused.action == "restore.refused" and "Could not reach" in refused.details["reason"]


def test_unknown_or_failed_backup_ids_are_answered_with_the_recent_backups(
    source: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    bot = bot_factory(_settings(f"sqlite:///{tmp_path}/s.db", _local(tmp_path), source["url"]))
    ok = bot.services.backups.backup_now("app", ALICE, label="nightly")

    record, answer = _request(bot, "restore app deadbeef")
    assert record is None
    assert "There is no backup `deadbeef` of `app`" in json.dumps(answer)
    assert ok.id in answer["text"] and "nightly" in answer["text"]

    record, answer = _request(bot, "restore app not-an-id")
    assert record is None and "is not a backup id" in answer["text"]

    record, answer = _request(bot, f"restore app {ok.id[:5]} --into {source['name']}")
    assert record is None and "is the source database itself" in answer["text"]
    assert "--in-place" in answer["text"]


def test_in_place_restore_needs_two_approvals_when_protected_and_takes_a_safety_backup_first(
    pg: Any, source: dict[str, Any], tmp_path: Path, bot_factory: Any, targets: list[str]
) -> None:
    settings = _settings(
        f"sqlite:///{tmp_path}/s.db", _local(tmp_path), source["url"], db={"protected": True}
    )
    bot = bot_factory(settings)
    backup = bot.services.backups.backup_now("app", ALICE)
    at_backup = database_fingerprint(source["url"])
    pg.execute(
        'INSERT INTO "Admin" (id, email, name, role, "passwordHash", "createdAt") '
        "VALUES (9999, 'late@example.com', 'Late', 'ADMIN', 'x', now())",
        dbname=source["name"],
    )
    pg.execute('DELETE FROM "ListingFeedback"', dbname=source["name"])
    before_restore = database_fingerprint(source["url"])
    assert before_restore != at_backup

    record, _ = _request(bot, f'restore app {backup.id} --in-place --reason "bad migration"')
    assert record.mode == "in_place" and record.required_approvals == 2
    text = json.dumps(bot.standin.message(record.channel, record.message_ts).blocks)
    assert "Will be overwritten" in text and "ListingFeedback" in text

    assert _click(bot, BOB, restore_blocks.APPROVE_ACTION, record) is None
    pending = bot.services.restores.get(record.id)
    assert pending.status == "pending" and pending.approvers == [BOB]
    assert "1 of 2" in json.dumps(bot.standin.message(record.channel, record.message_ts).blocks)
    assert _click(bot, CAROL, restore_blocks.APPROVE_ACTION, record) is None

    final = bot.services.restores.get(record.id)
    assert final.status == "succeeded", final.error
    assert database_fingerprint(source["url"]) == at_backup
    safety_id = final.result["safety_backup_id"]
    safety = bot.services.catalog.get(safety_id)
    assert safety.label == "pre-restore" and safety.status == "succeeded"
    assert safety.started_at < final.finished_at
    actions = [i.action for i in _incidents(bot, record.id)]
    assert actions.index("restore.safety_backup") < actions.index("restore.verified")
    assert any(safety_id in m.text for m in bot.standin.thread(record.channel, record.message_ts))

    # The safety backup brings back exactly the state the restore overwrote.
    back, _ = _request(bot, f"restore app {safety_id} --into app_before")
    targets.append("app_before")
    _click(bot, BOB, restore_blocks.APPROVE_ACTION, back)
    assert bot.services.restores.get(back.id).status == "succeeded"
    assert database_fingerprint(pg.url("app_before")) == before_restore


def test_into_an_existing_database_with_data_says_it_will_be_overwritten(
    pg: Any, source: dict[str, Any], tmp_path: Path, bot_factory: Any, targets: list[str]
) -> None:
    bot = bot_factory(_settings(f"sqlite:///{tmp_path}/s.db", _local(tmp_path), source["url"]))
    bot.services.backups.backup_now("app", ALICE)
    staging = pg.create_database("app_staging")
    targets.append("app_staging")
    pg.execute(
        "CREATE TABLE notes AS SELECT g AS id FROM generate_series(1, 5000) g", "app_staging"
    )

    record, _ = _request(bot, "restore app latest --into app_staging")
    msg = bot.standin.message(record.channel, record.message_ts)
    text = json.dumps(msg.blocks, ensure_ascii=False)
    assert "Will be overwritten" in text and "1 table(s)" in text
    assert "`public.notes` 5,000 → not in backup" in text
    _click(bot, BOB, restore_blocks.APPROVE_ACTION, record)

    final = bot.services.restores.get(record.id)
    assert final.status == "succeeded", final.error
    assert final.result["safety_backup_id"]
    assert final.result["extra_tables"] == ["public.notes"]
    restored = database_fingerprint(staging)["rows"]
    expected = database_fingerprint(source["url"])["rows"]
    assert {k: v for k, v in restored.items() if k != "public.notes"} == expected


def test_members_of_the_approver_group_may_approve_and_others_may_not(
    pg: Any, source: dict[str, Any], tmp_path: Path, bot_factory: Any, targets: list[str]
) -> None:
    settings = _settings(f"sqlite:///{tmp_path}/s.db", _local(tmp_path), source["url"])
    slack = settings.slack.model_copy(update={"approvers": [], "approver_group": "S0DBA"})
    bot = bot_factory(settings.model_copy(update={"slack": slack}))
    bot.standin.set_usergroup("S0DBA", [CAROL])
    bot.services.backups.backup_now("app", ALICE)
    record, _ = _request(bot, "restore app latest --into app_group")
    targets.append("app_group")

    answer = _click(bot, BOB, restore_blocks.APPROVE_ACTION, record)
    assert answer is not None and "not one of this channel's restore approvers" in answer["text"]
    assert _click(bot, CAROL, restore_blocks.APPROVE_ACTION, record) is None
    assert bot.services.restores.get(record.id).status == "succeeded"
    assert bot.standin.calls("usergroups.users.list"), "the group was read from Slack"


def test_a_click_landing_between_the_post_and_its_record_still_shows_on_the_message(
    source: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    """Found by the acceptance suite: a Deny that arrived while the request message was
    being recorded decided the request but left its buttons in the channel."""

    settings = _settings(f"sqlite:///{tmp_path}/s.db", _local(tmp_path), source["url"])
    bot = bot_factory(settings)
    bot.services.backups.backup_now("app", ALICE)
    record = bot.services.restores.request("app", "latest", requester=ALICE, into="app_fast")
    flow = bot.flow

    fast = clicked_while_posting(  # Bob's Deny arrives the moment the message exists
        bot, lambda _message: flow.after_click(bot.services.restores.click(record.id, "deny", BOB))
    )
    posted = Flows(bot.services, fast).restore.post_request(record)

    assert posted.status == "denied"
    message = bot.standin.message(posted.channel, posted.message_ts)
    assert [b for b in message.blocks if b["type"] == "actions"] == []
    assert "Denied* by <@UBOB>" in json.dumps(message.blocks)
