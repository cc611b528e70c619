"""S3 Object Lock (`storage.s3.object_lock`) against moto's S3 server over HTTP: every
artifact and manifest is written locked, a delete before the date is refused, retention
keeps locked backups with a note (dry run and `backupbot retention --apply`), treats a
deletion S3 refuses as a note and not a failure, and deletes every version once the lock
has expired; `config check --live` says whether the bucket has Object Lock enabled."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError

from backupbot.bot.composition import build_services
from backupbot.bot.services import Services
from backupbot.commands.retention_plan import DELETE, LOCKED, DatabasePolicy, plan_retention
from backupbot.settings import RetentionSettings
from backupbot.storage.artifacts import ObjectLock, ObjectLocked
from backupbot.storage.catalog import SUCCEEDED
from backupbot.storage.s3_store import S3Store
from backupbot.storage.s3_support import LockPolicy
from tests.conftest import ManualClock, make_settings
from tests.test_retention import _rec  # the rule table's catalog rows

MB = 1 << 20
BACKUPBOT = Path(sys.executable).with_name("backupbot")


@pytest.fixture
def locked_bucket(s3: Any) -> str:
    name = f"locked-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def _versions(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    page = s3.list_object_versions(Bucket=bucket, Prefix=key)
    entries = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
    return [e for e in entries if e["Key"] == key]


def _expire_locks(s3: Any, bucket: str, key: str) -> None:
    """End a GOVERNANCE lock early, as a holder of s3:BypassGovernanceRetention may."""
    past = datetime.now(UTC) - timedelta(minutes=1)
    for v in _versions(s3, bucket, key):
        s3.put_object_retention(
            Bucket=bucket,
            Key=key,
            VersionId=v["VersionId"],
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": past},
            BypassGovernanceRetention=True,
        )


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as an operator runs it."""
    if not BACKUPBOT.exists():
        pytest.fail(f"{BACKUPBOT} is missing: pip install -e '.[test]'", pytrace=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.pop("BACKUPBOT_CONFIG", None)
    return subprocess.run(
        [str(BACKUPBOT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_artifacts_and_manifests_are_written_locked_and_a_delete_before_the_date_fails(
    s3: Any, locked_bucket: str
) -> None:
    store = S3Store(
        s3,
        locked_bucket,
        "team/",
        part_size=5 * MB,
        max_concurrency=2,
        object_lock=LockPolicy("COMPLIANCE", 1),
    )
    before = datetime.now(UTC).replace(microsecond=0)
    writer = store.open_writer("app/a.dump.zst")  # a multipart upload of two parts
    writer.write(os.urandom(6 * MB))
    writer.commit()
    store.put_bytes("app/a.manifest.json", b"{}")
    after = datetime.now(UTC)

    for key in ("team/app/a.dump.zst", "team/app/a.manifest.json"):
        head = s3.head_object(Bucket=locked_bucket, Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        until = head["ObjectLockRetainUntilDate"]
        assert before + timedelta(days=1) <= until <= after + timedelta(days=1)
        (version,) = _versions(s3, locked_bucket, key)
        with pytest.raises(ClientError) as refused:
            s3.delete_object(Bucket=locked_bucket, Key=key, VersionId=version["VersionId"])
        assert refused.value.response["Error"]["Code"] == "AccessDenied"

    lock = store.lock("app/a.dump.zst")
    assert lock is not None and lock.mode == "COMPLIANCE"
    with pytest.raises(ObjectLocked) as locked:
        store.delete("app/a.manifest.json")
    assert "locked until" in str(locked.value) and "(COMPLIANCE)" in str(locked.value)
    assert s3.get_object(Bucket=locked_bucket, Key="team/app/a.manifest.json")["Body"].read() == (
        b"{}"
    )
    assert len(store.get_bytes("app/a.dump.zst")) == 6 * MB
    assert store.lock_enabled()


def test_without_a_lock_policy_nothing_is_locked_and_a_plain_bucket_says_so(
    s3: Any, bucket: str
) -> None:
    store = S3Store(s3, bucket, "team/")
    store.put_bytes("x.json", b"{}")
    assert store.lock("x.json") is None
    assert "ObjectLockMode" not in s3.head_object(Bucket=bucket, Key="team/x.json")
    assert not store.lock_enabled()
    store.delete("x.json")
    assert not store.exists("x.json")


def _config(
    tmp_path: Path, url: str, bucket: str, endpoint: str, lock: dict[str, Any] | None
) -> tuple[Path, dict[str, Any]]:
    s3: dict[str, Any] = {
        "bucket": bucket,
        "prefix": "team/",
        "endpoint_url": endpoint,
        "region": "us-east-1",
    }
    if lock is not None:
        s3["object_lock"] = lock
    cfg = {
        "state_url": f"sqlite:///{tmp_path}/state.db",
        "storage": {"s3": s3},
        "slack": {"channel": "C0BACKUPS", "approvers": ["UAPPROVER"]},
        "databases": [{"name": "app", "url": url, "retention_days": 7}],
    }
    config = tmp_path / "backupbot.yml"
    config.write_text(yaml.safe_dump(cfg))
    return config, cfg


@pytest.fixture
def locked_backups(
    sample_db: dict[str, Any], tmp_path: Path, s3: Any, locked_bucket: str, s3_endpoint: str
) -> Iterator[tuple[Path, Services, ManualClock, str, str]]:
    """Two backups in a locked bucket (GOVERNANCE, 1 day), taken 10 days and 1 day ago
    by the catalog's clock; the locks run from the real time they were written."""
    config, cfg = _config(
        tmp_path, sample_db["url"], locked_bucket, s3_endpoint, {"mode": "GOVERNANCE", "days": 1}
    )
    now = datetime.now(UTC)
    clock = ManualClock(now - timedelta(days=10))
    settings = make_settings(
        state_url=cfg["state_url"], storage=cfg["storage"], databases=cfg["databases"]
    )
    services = build_services(settings, {}, clock=clock)
    try:
        old = services.backups.backup_now("app", "scheduler")
        clock.advance(seconds=9 * 86400)
        new = services.backups.backup_now("app", "scheduler")
        assert old.status == new.status == SUCCEEDED, (old.error, new.error)
        yield config, services, clock, old.id, new.id
    finally:
        services.close()


def test_retention_keeps_a_locked_backup_with_a_note_and_deletes_it_once_expired(
    locked_backups: tuple[Path, Services, ManualClock, str, str],
    s3: Any,
    locked_bucket: str,
    tmp_path: Path,
) -> None:
    config, services, _clock, old, new = locked_backups
    record = services.catalog.get(old)
    keys = [f"team/{record.artifact_key}", f"team/{record.manifest_key}"]

    dry = _run(tmp_path, "--config", str(config), "retention")
    assert dry.returncode == 0, dry.stderr
    line = next(x for x in dry.stdout.splitlines() if old in x)
    assert line.lstrip().startswith("keep") and "locked until" in line and "(GOVERNANCE)" in line
    assert "would delete 0 backup(s)" in dry.stdout

    applied = _run(tmp_path, "--config", str(config), "retention", "--apply")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"kept {old} (app, 10 days old): locked until" in applied.stdout
    assert "retention: deleted 0, failed 0, kept 2" in applied.stdout
    assert services.catalog.get(old).status == SUCCEEDED
    assert all(len(_versions(s3, locked_bucket, k)) == 1 for k in keys)

    # Given a later `now` the plan sees the lock expired; S3 (on the real time) still
    # refuses the deletion: a note, the backup kept, no failure to alert about.
    later = datetime.now(UTC) + timedelta(days=2)
    plan = services.retention.plan("app", later)
    assert [d.backup.id for d in plan.to_delete] == [old]
    report = services.retention.apply(later, "scheduler", "app")
    assert report.ok and not report.failed and not report.deleted
    assert [(d.backup.id, d.rule) for d in report.locked] == [(old, LOCKED)]
    assert "S3 refused to delete it" in report.locked[0].reason
    actions = [i.action for i in services.incidents.recent(20)]
    assert "retention.delete_locked" in actions and "retention.delete_failed" not in actions
    assert services.catalog.get(old).status == SUCCEEDED
    assert all(len(_versions(s3, locked_bucket, k)) == 1 for k in keys)

    # The lock expires (moto keeps time; a GOVERNANCE lock may be ended early): the next
    # run deletes every version of the artifact and the manifest.
    for key in keys:
        _expire_locks(s3, locked_bucket, key)
    done = _run(tmp_path, "--config", str(config), "retention", "--apply", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["ok"] and [d["id"] for d in out["deleted"]] == [old] and out["locked"] == []
    assert all(_versions(s3, locked_bucket, k) == [] for k in keys)
    newer = services.catalog.get(new)
    assert s3.head_object(Bucket=locked_bucket, Key=f"team/{newer.artifact_key}")


def test_the_plan_keeps_a_lock_until_its_date_and_not_after() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    rows = [_rec("new", 1), _rec("old", 60)]
    lock = ObjectLock("COMPLIANCE", now + timedelta(days=3))
    policies = [DatabasePolicy("app", 30)]
    settings = RetentionSettings()
    kept = plan_retention(rows, policies, settings, now, lock_of=lambda b: lock)
    (old,) = [d for d in kept.decisions if d.backup.id == "old"]
    assert (old.action, old.rule) == ("keep", LOCKED)
    assert old.reason == "locked until 2026-03-04 00:00 UTC (COMPLIANCE)"
    gone = plan_retention(rows, policies, settings, now + timedelta(days=4), lock_of=lambda b: lock)
    assert [d.backup.id for d in gone.decisions if d.action == DELETE] == ["old"]


def test_config_check_live_says_whether_the_bucket_has_object_lock(
    sample_db: dict[str, Any],
    tmp_path: Path,
    locked_bucket: str,
    bucket: str,
    s3_endpoint: str,
) -> None:
    lock = {"mode": "COMPLIANCE", "days": 30}
    config, _ = _config(tmp_path, sample_db["url"], locked_bucket, s3_endpoint, lock)
    ok = _run(tmp_path, "--config", str(config), "config", "check", "--live")
    assert (
        f"object lock OK: bucket {locked_bucket} has Object Lock enabled (COMPLIANCE, 30 days)"
        in ok.stdout
    ), ok.stdout + ok.stderr
    assert "region us-east-1, object lock COMPLIANCE 30 days" in ok.stdout

    config, _ = _config(tmp_path, sample_db["url"], bucket, s3_endpoint, lock)
    failed = _run(tmp_path, "--config", str(config), "config", "check", "--live")
    assert failed.returncode == 1
    assert f"object lock FAILED: bucket {bucket} does not have Object Lock enabled" in (
        failed.stdout
    )


def test_discarding_a_locked_failed_upload_hides_it_behind_a_delete_marker(
    s3: Any, locked_bucket: str
) -> None:
    store = S3Store(s3, locked_bucket, "", object_lock=LockPolicy("GOVERNANCE", 1))
    store.put_bytes("app/failed.dump.zst", b"not verified")
    store.discard("app/failed.dump.zst")  # what a failed backup does with its artifact
    assert not store.exists("app/failed.dump.zst")
    assert store.list_keys("app/") == []
    versions = _versions(s3, locked_bucket, "app/failed.dump.zst")
    assert len(versions) == 2  # the locked version, kept by S3 until its date, and the marker
