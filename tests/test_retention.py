"""Retention: the rules as a table, real runs on S3 (moto) and the local store that delete
exactly the catalogued artifacts of expired backups and nothing else, store failures that
leave rows as they were, the `/backup retention` dry run over signed Slack, and the CLI."""

from __future__ import annotations

import getpass
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from backupbot.bot.cli.main import main
from backupbot.bot.composition import build_services
from backupbot.bot.services import Services
from backupbot.bot.slack.blocks.retention import retention_dry_run, retention_summary
from backupbot.commands.retention_plan import (
    DELETE,
    EXPIRED,
    IN_USE,
    KEEP,
    LABEL,
    NEWEST,
    OTHER_STORE,
    UNCONFIGURED,
    WITHIN_POLICY,
    DatabasePolicy,
    RetentionReport,
    plan_retention,
)
from backupbot.devkit.slack_standin import block_kit_errors
from backupbot.errors import BackupbotError, UnknownDatabase
from backupbot.settings import RetentionSettings
from backupbot.storage.catalog import DELETED, FAILED, RUNNING, SUCCEEDED, BackupRecord
from backupbot.storage.incidents import Incident
from tests.conftest import CHANNEL, ManualClock, make_settings, s3_keys

T0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # the first backup
NOW = T0 + timedelta(days=45)  # the first retention run in the end-to-end tests


# -- the rules, as a table -----------------------------------------------------------------


def _rec(
    backup_id: str,
    days_old: float,
    *,
    db: str = "app",
    label: str | None = None,
    status: str = SUCCEEDED,
    store: str = "local",
    size: int = 1000,
) -> BackupRecord:
    started = NOW - timedelta(days=days_old)
    return BackupRecord(
        id=backup_id,
        database=db,
        status=status,
        actor="scheduler",
        label=label,
        started_at=started,
        heartbeat_at=started,
        finished_at=started + timedelta(minutes=1),
        progress_bytes=size,
        store=store,
        artifact_key=f"{db}/{backup_id}.dump.zst",
        manifest_key=f"{db}/{backup_id}.manifest.json",
        location=f"/b/{db}/{backup_id}.dump.zst",
        raw_size=size * 3,
        stored_size=size,
        sha256="0" * 64,
        compression="zstd-3",
        server_version="16.4",
        pg_dump_version="16.4",
        manifest={},
        error=None,
    )


POLICIES = [DatabasePolicy("app", 30), DatabasePolicy("analytics", 7)]
DEFAULTS = RetentionSettings()


@pytest.mark.parametrize(
    ("backups", "kwargs", "expected"),
    [
        pytest.param(
            [_rec("new", 1), _rec("mid", 29.9), _rec("old", 30.1)],
            {},
            {"new": (KEEP, WITHIN_POLICY), "mid": (KEEP, WITHIN_POLICY), "old": (DELETE, EXPIRED)},
            id="older-than-retention-days-is-deleted",
        ),
        pytest.param(
            [_rec("only", 400)],
            {},
            {"only": (KEEP, NEWEST)},
            id="the-newest-verified-backup-is-kept-whatever-its-age",
        ),
        pytest.param(
            [
                _rec("a", 90),
                _rec("b", 60),
                _rec("f", 1, status=FAILED),
                _rec("r", 0, status=RUNNING),
            ],
            {},
            {"a": (DELETE, EXPIRED), "b": (KEEP, NEWEST)},
            id="failed-and-running-rows-are-not-considered-nor-count-as-newest",
        ),
        pytest.param(
            [
                _rec("new", 1),
                _rec("pd", 60, label="pre-deploy"),
                _rec("pr", 89, label="pre-restore"),
            ],
            {},
            {"new": (KEEP, WITHIN_POLICY), "pd": (KEEP, LABEL), "pr": (KEEP, LABEL)},
            id="labels-to-keep-are-kept-keep-labeled-days",
        ),
        pytest.param(
            [_rec("new", 1), _rec("pd", 91, label="pre-deploy"), _rec("x", 60, label="ci")],
            {},
            {"new": (KEEP, WITHIN_POLICY), "pd": (DELETE, EXPIRED), "x": (DELETE, EXPIRED)},
            id="labels-expire-after-keep-labeled-days-and-other-labels-do-not-protect",
        ),
        pytest.param(
            [_rec("new", 1), _rec("pd", 60, label=" Pre-Deploy ")],
            {},
            {"new": (KEEP, WITHIN_POLICY), "pd": (KEEP, LABEL)},
            id="label-match-ignores-case-and-spaces",
        ),
        pytest.param(
            [_rec("new", 1), _rec("old", 60)],
            {"in_use": frozenset({"old"})},
            {"new": (KEEP, WITHIN_POLICY), "old": (KEEP, IN_USE)},
            id="a-backup-an-open-restore-or-drill-reads-is-kept",
        ),
        pytest.param(
            [_rec("new", 1, store="s3"), _rec("old", 60, store="local")],
            {"store_kind": "s3"},
            {"new": (KEEP, WITHIN_POLICY), "old": (KEEP, OTHER_STORE)},
            id="rows-in-another-kind-of-store-are-left-alone",
        ),
        pytest.param(
            [_rec("gone", 300, db="legacy"), _rec("gone2", 200, db="legacy")],
            {},
            {"gone": (KEEP, UNCONFIGURED), "gone2": (KEEP, UNCONFIGURED)},
            id="backups-of-unconfigured-databases-are-left-alone",
        ),
        pytest.param(
            [_rec("a1", 10, db="analytics"), _rec("a2", 6, db="analytics"), _rec("p1", 10)],
            {},
            {"a1": (DELETE, EXPIRED), "a2": (KEEP, WITHIN_POLICY), "p1": (KEEP, WITHIN_POLICY)},
            id="each-database-has-its-own-retention-days",
        ),
    ],
)
def test_plan_retention_rules(
    backups: list[BackupRecord], kwargs: dict[str, Any], expected: dict[str, tuple[str, str]]
) -> None:
    plan = plan_retention(backups, POLICIES, DEFAULTS, NOW, **kwargs)
    got = {d.backup.id: (d.action, d.rule) for d in plan.decisions}
    assert got == expected


def test_reasons_are_plain_words_and_labels_are_kept_at_least_as_long_as_retention() -> None:
    backups = [
        _rec("new", 0.5),
        _rec("old", 45),
        _rec("pd", 44, label="pre-deploy"),
        _rec("pd-old", 95, label="pre-deploy"),
        _rec("legacy1", 5, db="legacy"),
    ]
    plan = plan_retention(backups, [DatabasePolicy("app", 30)], DEFAULTS, NOW)
    reasons = {d.backup.id: d.reason for d in plan.decisions}
    assert reasons == {
        "new": "within 30 days",
        "old": "older than 30 days",
        "pd": "label pre-deploy kept 90 days",
        "pd-old": "older than 30 days (label pre-deploy is kept 90 days)",
        "legacy1": "legacy is not configured; left alone",
    }
    assert [d.backup.id for d in plan.to_delete] == ["old", "pd-old"]
    assert plan.bytes_to_free == 2000 and plan.unconfigured == {"legacy": 1}
    # a labelled backup within a longer retention_days is simply within policy
    long = plan_retention(backups[:4], [DatabasePolicy("app", 120)], DEFAULTS, NOW)
    assert {d.rule for d in long.decisions} == {WITHIN_POLICY}
    # decisions are newest first within a database, databases in configuration order
    assert [d.backup.id for d in plan.decisions] == ["new", "pd", "old", "pd-old", "legacy1"]
    assert json.loads(json.dumps(plan.as_json()))["would_delete"] == 2


def test_the_dry_run_message_fits_slack_for_a_huge_catalog_and_says_why() -> None:
    policies = [DatabasePolicy(f"db{i:02d}", 30) for i in range(30)]
    backups = [
        _rec(f"{i:02d}-{n:03d}", n * 0.5, db=p.name, label="pre-deploy" if n % 7 == 0 else None)
        for i, p in enumerate(policies)
        for n in range(200)
    ]
    backups.append(_rec("zz", 400, db="legacy"))
    plan = plan_retention(backups, policies, DEFAULTS, NOW)
    message = retention_dry_run(plan)
    assert block_kit_errors(message.blocks) == []
    text = json.dumps(message.blocks, ensure_ascii=False)
    assert "older than 30 days" in text and "label pre-deploy kept 90 days" in text
    assert "…and" in text and "10 more database(s)" in text and "`legacy` (1)" in text
    assert "Nothing was deleted now" in text
    assert "would delete" in message.text

    # 200-character labels, kept and deleted, still fit one section per database
    settings = RetentionSettings(keep_labels=["y" * 200])
    long_label = [_rec(f"l{n}", 40 + n * 2, label="y" * 200) for n in range(40)]
    message = retention_dry_run(
        plan_retention([*long_label, _rec("n", 1)], POLICIES, settings, NOW)
    )
    assert block_kit_errors(message.blocks) == []
    assert "Would delete" in json.dumps(
        message.blocks, ensure_ascii=False
    ) and "Kept although" in json.dumps(message.blocks)


def test_the_run_summary_is_none_when_nothing_happened() -> None:
    plan = plan_retention([_rec("new", 1)], POLICIES, DEFAULTS, NOW)
    report = RetentionReport(NOW, "scheduler", plan, (), (), ())
    assert retention_summary(report) is None


# -- end to end ---------------------------------------------------------------------------


def _backup(services: Services, clock: ManualClock, at: datetime, db: str, **kw: Any) -> str:
    clock.advance(seconds=(at - clock.now()).total_seconds())
    record = services.backups.backup_now(db, "scheduler", **kw)
    assert record.status == SUCCEEDED, record.error
    return record.id


def _incidents(services: Services, action: str) -> list[Incident]:
    return [i for i in reversed(services.incidents.recent(500)) if i.action == action]


def _s3_settings(state_url: str, url: str, bucket: str, endpoint: str, dbs: list[str]) -> Any:
    return make_settings(
        state_url=state_url,
        storage={
            "s3": {
                "bucket": bucket,
                "prefix": "team/",
                "endpoint_url": endpoint,
                "region": "us-east-1",
            }
        },
        databases=[{"name": n, "url": url} for n in dbs],
    )


def test_s3_run_deletes_exactly_the_expired_catalogued_backups_and_never_foreign_objects(
    sample_db: dict[str, Any], state_url: str, s3: Any, bucket: str, s3_endpoint: str
) -> None:
    url = sample_db["url"]
    clock = ManualClock(T0)
    # `legacy` is configured while its backup is taken, and removed from the configuration
    # before retention runs.
    before = build_services(
        _s3_settings(state_url, url, bucket, s3_endpoint, ["app", "analytics", "legacy"]),
        {},
        clock=clock,
    )
    try:
        old = _backup(before, clock, T0, "app")
        labelled = _backup(before, clock, T0 + timedelta(days=1), "app", label="pre-deploy")
        old2 = _backup(before, clock, T0 + timedelta(days=2), "app")
        lonely = _backup(before, clock, T0 + timedelta(days=2, hours=1), "analytics")
        legacy = _backup(before, clock, T0 + timedelta(days=2, hours=2), "legacy")
        recent = _backup(before, clock, T0 + timedelta(days=40), "app")
        running = before.catalog.start("analytics", "UALICE", None, "s3", T0).id
    finally:
        before.close()
    foreign = {
        "team/README.txt": b"not the bot's",
        "team/app/notes.txt": b"someone's notes",
        "team/app/20260101T020000Z-deadbeef.dump.zst": b"looks like an artifact, is not catalogued",
        "other/app/x.dump.zst": b"outside the prefix",
    }
    for key, body in foreign.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    keys_before = set(s3_keys(s3, bucket))

    services = build_services(
        _s3_settings(state_url, url, bucket, s3_endpoint, ["app", "analytics"]), {}, clock=clock
    )
    try:
        clock.advance(seconds=(NOW - clock.now()).total_seconds())
        plan = services.retention.plan(None, NOW)
        assert {d.backup.id for d in plan.to_delete} == {old, old2}
        assert plan.unconfigured == {"legacy": 1}
        assert set(s3_keys(s3, bucket)) == keys_before  # the dry run deletes nothing

        report = services.retention.apply(NOW)

        assert report.ok and {d.backup.id for d in report.deleted} == {old, old2}
        gone = set()
        for backup_id in (old, old2):
            row = services.catalog.get(backup_id)
            assert row.status == DELETED and row.deleted_at == NOW
            gone |= {f"team/{row.artifact_key}", f"team/{row.manifest_key}"}
        assert set(s3_keys(s3, bucket)) == keys_before - gone
        for key, body in foreign.items():
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
        for backup_id in (labelled, lonely, legacy, recent):
            row = services.catalog.get(backup_id)
            assert row.status == SUCCEEDED and row.deleted_at is None
            assert f"team/{row.artifact_key}" in keys_before - gone
        assert services.catalog.get(running).status == RUNNING

        deletions = _incidents(services, "retention.deleted")
        assert [(i.backup_id, i.actor, i.outcome) for i in deletions] == [
            (old, "scheduler", "ok"),
            (old2, "scheduler", "ok"),
        ]
        assert deletions[0].details["age_days"] == 45
        assert deletions[0].details["reason"] == "older than 30 days"
        [run] = _incidents(services, "retention.run")
        assert run.outcome == "ok" and run.at == NOW
        assert run.details["deleted"] == 2 and run.details["failed"] == 0
        assert run.details["unconfigured"] == {"legacy": 1}

        summary = retention_summary(report)
        assert summary is not None and block_kit_errors(summary.blocks) == []
        assert old in json.dumps(summary.blocks) and "deleted 2 backup(s)" in summary.text

        # The next day: nothing new to delete, and the run is still recorded.
        again = services.retention.apply(NOW + timedelta(days=1))
        assert again.deleted == () and retention_summary(again) is None
        assert len(_incidents(services, "retention.run")) == 2

        # 92 days after it was taken the pre-deploy label no longer protects it; the
        # newest backup of each database is kept whatever its age.
        later = T0 + timedelta(days=92)
        report = services.retention.apply(later)
        assert [d.backup.id for d in report.deleted] == [labelled]
        assert "label pre-deploy is kept 90 days" in report.deleted[0].reason
        kept = {d.backup.id: d.rule for d in report.plan.kept}
        assert kept == {recent: NEWEST, lonely: NEWEST, legacy: UNCONFIGURED}
    finally:
        services.close()


def test_s3_missing_bucket_fails_each_deletion_leaves_rows_and_records_the_failure(
    sample_db: dict[str, Any], s3: Any, bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    state = f"sqlite:///{tmp_path}/state.db"
    clock = ManualClock(T0)
    services = build_services(
        _s3_settings(state, sample_db["url"], bucket, s3_endpoint, ["app"]), {}, clock=clock
    )
    try:
        old = _backup(services, clock, T0, "app")
        old2 = _backup(services, clock, T0 + timedelta(days=1), "app")
        _backup(services, clock, T0 + timedelta(days=40), "app")
    finally:
        services.close()
    # The bucket is gone (deleted by someone, or the configuration names a wrong one).
    keys = s3_keys(s3, bucket)
    for key in keys:
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)

    services = build_services(
        _s3_settings(state, sample_db["url"], bucket, s3_endpoint, ["app"]), {}, clock=clock
    )
    try:
        report = services.retention.apply(NOW)
        assert not report.ok and report.deleted == ()
        assert [f.decision.backup.id for f in report.failed] == [old, old2]  # it went on
        assert "does not exist" in report.failed[0].error
        for backup_id in (old, old2):
            row = services.catalog.get(backup_id)
            assert row.status == SUCCEEDED and row.deleted_at is None
        failures = _incidents(services, "retention.delete_failed")
        assert [(i.backup_id, i.outcome) for i in failures] == [(old, "failed"), (old2, "failed")]
        assert "does not exist" in failures[0].details["error"]
        assert _incidents(services, "retention.deleted") == []
        [run] = _incidents(services, "retention.run")
        assert run.outcome == "failed" and run.details["failed"] == 2
        assert old in run.details["error"] and "does not exist" in run.details["error"]
        summary = retention_summary(report)
        assert summary is not None and "could not delete 2" in json.dumps(summary.blocks)
        assert "does not exist" in json.dumps(summary.blocks)
    finally:
        services.close()


def _local_settings(state_url: str, tmp_path: Path, url: str) -> Any:
    return make_settings(
        state_url=state_url,
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=[{"name": "app", "url": url}, {"name": "analytics", "url": url}],
    )


@pytest.fixture
def local(tmp_path: Path, sample_db: dict[str, Any]) -> Iterator[tuple[Services, ManualClock]]:
    clock = ManualClock(T0)
    services = build_services(
        _local_settings(f"sqlite:///{tmp_path}/state.db", tmp_path, sample_db["url"]),
        {},
        clock=clock,
    )
    yield services, clock
    services.close()


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_local_store_failures_leave_rows_as_they_were_and_the_next_run_finishes_the_job(
    local: tuple[Services, ManualClock], tmp_path: Path
) -> None:
    services, clock = local
    root = tmp_path / "backups"
    old = _backup(services, clock, T0, "app")
    analytics_old = _backup(services, clock, T0 + timedelta(hours=1), "analytics")
    newest = _backup(services, clock, T0 + timedelta(days=40), "app")
    _backup(services, clock, T0 + timedelta(days=40, hours=1), "analytics")
    (root / "app" / "keep-me.txt").write_text("not the bot's")
    (root / "stray.dump.zst").write_bytes(b"foreign")
    row = services.catalog.get(old)
    old_files = {row.artifact_key, row.manifest_key}

    # 1. Someone moved app's folder to another disk and left a symlink: the store refuses
    #    to delete outside its directory. analytics still gets its deletion.
    elsewhere = tmp_path / "elsewhere"
    shutil.move(root / "app", elsewhere)
    (root / "app").symlink_to(elsewhere)
    report = services.retention.apply(NOW)
    assert [f.decision.backup.id for f in report.failed] == [old]
    assert "outside the store" in report.failed[0].error
    assert [d.backup.id for d in report.deleted] == [analytics_old]
    assert services.catalog.get(old).status == SUCCEEDED
    assert {p.name for p in elsewhere.iterdir()} >= {Path(k).name for k in old_files}
    (root / "app").unlink()
    shutil.move(elsewhere, root / "app")

    # 2. app's folder is not a directory (a failed mount left a file there): an OS error.
    shutil.move(root / "app", elsewhere)
    (root / "app").write_text("not a directory")
    report = services.retention.apply(NOW + timedelta(hours=1))
    assert [f.decision.backup.id for f in report.failed] == [old] and report.deleted == ()
    assert "Not a directory" in report.failed[0].error and "mounted" in report.failed[0].error
    assert services.catalog.get(old).status == SUCCEEDED
    (root / "app").unlink()
    shutil.move(elsewhere, root / "app")

    failures = _incidents(services, "retention.delete_failed")
    assert [i.backup_id for i in failures] == [old, old]
    assert [i.outcome for i in _incidents(services, "retention.run")] == ["failed", "failed"]

    # 3. Fixed: the next run deletes it; foreign files stay.
    files_before = _files(root)
    report = services.retention.apply(NOW + timedelta(hours=2), actor="UOPS")
    assert report.ok and [d.backup.id for d in report.deleted] == [old]
    assert _files(root) == files_before - old_files
    assert {"app/keep-me.txt", "stray.dump.zst"} <= _files(root)
    assert services.catalog.get(old).status == DELETED
    assert services.catalog.get(newest).status == SUCCEEDED
    [deleted] = [i for i in _incidents(services, "retention.deleted") if i.backup_id == old]
    assert deleted.actor == "UOPS"
    assert _incidents(services, "retention.run")[-1].outcome == "ok"


def test_a_backup_an_open_restore_reads_is_not_deleted(
    local: tuple[Services, ManualClock],
) -> None:
    services, clock = local
    old = _backup(services, clock, T0, "app")
    _backup(services, clock, T0 + timedelta(days=40), "app")
    clock.advance(seconds=(NOW - clock.now()).total_seconds())
    request = services.restores.request("app", old, requester="UALICE", into="app_check")
    plan = services.retention.plan("app", NOW)
    assert [(d.backup.id, d.rule) for d in plan.decisions if d.backup.id == old] == [(old, IN_USE)]
    assert services.retention.apply(NOW).deleted == ()
    services.restores.click(request.id, "cancel", "UALICE")
    assert [d.backup.id for d in services.retention.apply(NOW).deleted] == [old]


def test_retention_claims_before_it_deletes_so_a_restore_and_a_deletion_never_overlap(
    local: tuple[Services, ManualClock],
) -> None:
    services, clock = local
    old = _backup(services, clock, T0, "app")
    _backup(services, clock, T0 + timedelta(days=40), "app")
    clock.advance(seconds=(NOW - clock.now()).total_seconds())

    # A restore asked for after retention planned, before it claimed: the claim loses.
    request = services.restores.request("app", old, requester="UALICE", into="app_check")
    assert services.catalog.claim_for_deletion(old) is False
    services.restores.click(request.id, "cancel", "UALICE")

    # Claimed first: a restore of it is refused in plain words, and nothing is opened.
    assert services.catalog.claim_for_deletion(old) is True
    with pytest.raises(BackupbotError, match="deleting; only verified backups can be restored"):
        services.restores.request("app", old, requester="UALICE", into="app_check")
    assert services.catalog.get(old).status == "deleting"


def test_a_deletion_a_stopped_run_claimed_is_finished_by_the_next_run(
    local: tuple[Services, ManualClock], tmp_path: Path
) -> None:
    services, clock = local
    old = _backup(services, clock, T0, "app")
    _backup(services, clock, T0 + timedelta(days=40), "app")
    row = services.catalog.get(old)
    # The run claimed it, removed the manifest, and the process died before the rest.
    assert services.catalog.claim_for_deletion(old)
    assert row.manifest_key is not None and row.artifact_key is not None
    services.store.delete(row.manifest_key)

    report = services.retention.apply(NOW)

    assert report.ok
    assert services.catalog.get(old).status == DELETED
    assert not (tmp_path / "backups" / row.artifact_key).exists()
    [finished] = [i for i in _incidents(services, "retention.deleted") if i.backup_id == old]
    assert "stopped before it finished" in finished.details["reason"]


def test_an_unknown_database_is_a_usage_error(local: tuple[Services, ManualClock]) -> None:
    services, _clock = local
    with pytest.raises(UnknownDatabase, match="Did you mean app"):
        services.retention.plan("ap", NOW)


# -- Slack and CLI --------------------------------------------------------------------------


def test_slash_retention_answers_the_requester_with_the_dry_run_and_deletes_nothing(
    sample_db: dict[str, Any], tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(T0)
    settings = _local_settings(f"sqlite:///{tmp_path}/s.db", tmp_path, sample_db["url"])
    bot = bot_factory(settings, clock)
    old = _backup(bot.services, clock, T0, "app")
    kept = _backup(bot.services, clock, T0 + timedelta(days=1), "app", label="pre-deploy")
    _backup(bot.services, clock, T0 + timedelta(days=40), "app")
    clock.advance(seconds=(NOW - clock.now()).total_seconds())
    files = _files(tmp_path / "backups")

    resp = bot.signer.slash_command("UBOB", "retention")
    assert resp.status == 200
    bot.wait_idle()
    [post] = bot.standin.response_posts()
    assert post.body.get("response_type", "ephemeral") == "ephemeral"
    body = json.dumps(post.body)
    assert f"`{old}`" in body and "older than 30 days" in body
    assert f"`{kept}`" in body and "label pre-deploy kept 90 days" in body
    assert "would delete 1 backup(s)" in post.body["text"]
    assert "`analytics`" in body and "No verified backups yet" in body
    assert bot.standin.messages(CHANNEL) == []

    bot.signer.slash_command("UBOB", "retention analytics")
    bot.wait_idle()
    only = json.dumps(bot.standin.response_posts()[-1].body)
    assert "`analytics`" in only and old not in only

    assert _files(tmp_path / "backups") == files
    assert bot.services.catalog.get(old).status == SUCCEEDED
    assert _incidents(bot.services, "retention.deleted") == []
    assert _incidents(bot.services, "retention.run") == []


def test_cli_dry_run_lists_decisions_and_apply_deletes_records_and_exits_zero(
    sample_db: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = {
        "state_url": f"sqlite:///{tmp_path}/state.db",
        "storage": {"local": {"path": str(tmp_path / "backups")}},
        "databases": [{"name": "app", "url": sample_db["url"], "retention_days": 7}],
    }
    config = tmp_path / "backupbot.yml"
    config.write_text(yaml.safe_dump(cfg))
    # The CLI runs on the real clock: take the backups 10 days and 1 day in the past.
    now = datetime.now(UTC)
    clock = ManualClock(now - timedelta(days=10))
    settings = make_settings(
        state_url=cfg["state_url"], storage=cfg["storage"], databases=cfg["databases"]
    )
    services = build_services(settings, {}, clock=clock)
    try:
        old = _backup(services, clock, now - timedelta(days=10), "app")
        new = _backup(services, clock, now - timedelta(days=1), "app")
    finally:
        services.close()
    files = _files(tmp_path / "backups")

    assert main(["--config", str(config), "retention"]) == 0
    out = capsys.readouterr().out
    assert f"delete {old}" in out and "older than 7 days" in out
    assert f"keep   {new}" in out and "within 7 days" in out
    assert "would delete 1 backup(s)" in out and "dry run" in out
    assert _files(tmp_path / "backups") == files

    assert main(["--config", str(config), "retention", "app", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in plan["decisions"] if d["action"] == "delete"] == [old]

    assert main(["--config", str(config), "retention", "nope"]) == 2
    assert "no configured database named nope" in capsys.readouterr().err

    # The folder moved away behind a symlink: the deletion fails, exit 1, nothing changes.
    root, elsewhere = tmp_path / "backups", tmp_path / "elsewhere"
    shutil.move(root / "app", elsewhere)
    (root / "app").symlink_to(elsewhere)
    assert main(["--config", str(config), "retention", "--apply"]) == 1
    out = capsys.readouterr().out
    assert f"FAILED to delete {old}" in out and "retention: deleted 0, failed 1" in out
    (root / "app").unlink()
    shutil.move(elsewhere, root / "app")
    assert _files(root) == files

    assert main(["--config", str(config), "retention", "--apply", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and [d["id"] for d in report["deleted"]] == [old]
    assert len(_files(tmp_path / "backups")) == len(files) - 2

    assert main(["--config", str(config), "log", "--json", "--limit", "5"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["action"] for r in records[:3]] == [
        "retention.run",
        "retention.deleted",
        "retention.run",  # the failed run before
    ]
    assert {r["actor"] for r in records[:2]} == {f"cli:{getpass.getuser()}"}

    assert main(["--config", str(config), "retention", "--apply"]) == 0
    assert "retention: deleted 0, failed 0, kept 1" in capsys.readouterr().out
