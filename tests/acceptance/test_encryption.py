"""Backups encrypted at rest with age, through the real `backupbot serve` with the config
the README shows (`backup.encrypt_to`, `backup.verify_identity`), on a local store and on
S3 (moto's server): the stored artifact is age, not zstd; it restores with the `age` CLI
and no backupbot; restores and drills through the bot decrypt with the identity; without
it (or with the wrong one) a restore is refused, recorded, and touches nothing.

Keys are generated at test time; no private key is committed.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from pyrage import x25519

from backupbot.devkit.manual_restore import restore_by_hand
from backupbot.devkit.s3_fault_proxy import Fault, S3FaultProxy
from backupbot.devkit.sample_data import database_fingerprint
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REQUESTER, REVIEWER, Deployment
from tests.acceptance.test_flows import (
    _backup_id,
    _text,
    backup_now,
    database_exists,
    request_restore,
)
from tests.conftest import s3_keys

AGE_MAGIC = b"age-encryption.org/v1\n"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def write_identity(path: Path) -> str:
    """A new age identity file at `path` (as age-keygen writes it); its public key."""
    identity = x25519.Identity.generate()
    public = str(identity.to_public())
    path.write_text(f"# public key: {public}\n{identity}\n", encoding="utf-8")
    path.chmod(0o600)
    return public


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, str]:
    """The operators' key, kept outside the deployment: its file and public key."""
    path = tmp_path / "operators-key.txt"
    return path, write_identity(path)


def encrypted_deployment(
    pg: Any, standin: SlackStandin, workdir: Path, recipients: list[str], identity: Path | None
) -> tuple[Deployment, str]:
    """A deployment of `app` whose backups are encrypted to `recipients`; with the identity
    file copied beside the config (`verify_identity: ./age-key.txt`) when given."""
    url, _counts = source_database(pg)
    dep = fresh_deployment(("http", "sqlite"), pg, standin, workdir, databases={"app": url})
    backup: dict[str, Any] = {"encrypt_to": recipients}
    if identity is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "age-key.txt").write_text(identity.read_text())
        backup["verify_identity"] = "./age-key.txt"
    dep.config["backup"] = backup
    return dep, url


def restored(dep: Deployment, args: str) -> str:
    """Request, approve and wait for a restore; the request message's final text."""
    request, restore_id = request_restore(dep, args)
    dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
    final = dep.wait_message(
        lambda m: (
            m.ts == request.ts and ("Restored and verified" in _text(m) or "failed" in _text(m))
        )
    )
    return _text(final)


def test_an_encrypted_backup_is_age_restores_with_the_age_cli_and_through_the_bot(
    pg: Any, tmp_path: Path, keys: tuple[Path, str]
) -> None:
    key_file, public = keys
    with SlackStandin() as standin:
        dep, url = encrypted_deployment(pg, standin, tmp_path / "deploy", [public], key_file)
        dep.start()
        try:
            message = backup_now(dep)
            assert message.text.startswith("Backup of app succeeded"), _text(message)
            assert "decrypted" in _text(message) and ".age" in _text(message)
            backup_id = _backup_id(message.text)
            [artifact] = dep.store_dir.glob(f"app/*-{backup_id}.dump.zst.age")
            head = artifact.read_bytes()[:64]
            assert head.startswith(AGE_MAGIC) and not head.startswith(ZSTD_MAGIC)
            assert b"-> X25519 " in artifact.read_bytes()[:512]
            manifest = json.loads(
                artifact.with_name(
                    artifact.name.replace(".dump.zst.age", ".manifest.json")
                ).read_text()
            )
            assert manifest["encryption"] == {"format": "age", "recipients": [public]}
            assert manifest["verified"]["method"] == "full"
            assert manifest["restore_command"].startswith(f"age -d -i key.txt {artifact.name} |")
            succeeded = dep.wait_action("backup.succeeded", "app")
            assert succeeded.details["verification"] == "full" and succeeded.details["encrypted"]

            by_hand = pg.create_database(f"byhand_age_{backup_id}")
            restore_by_hand(artifact, by_hand, identity=key_file)
            assert database_fingerprint(by_hand) == database_fingerprint(url)

            target = f"age_into_{backup_id}"
            pg.drop_database(target)
            assert "Restored and verified" in restored(dep, f"app {backup_id} --into {target}")
            assert database_fingerprint(pg.url(target)) == database_fingerprint(url)

            before = {m.ts for m in dep.standin.messages()}
            dep.slash(REQUESTER, "drill app")
            drill = dep.wait_message(
                lambda m: (
                    m.ts not in before
                    and m.text.startswith(
                        ("Restore drill of app passed", "Restore drill of app failed")
                    )
                )
            )
            assert drill.text.startswith("Restore drill of app passed"), _text(drill)
            assert key_file.read_text().split()[-1] not in dep.serve.log_text()  # type: ignore[union-attr]
        finally:
            dep.close()


def test_without_the_identity_it_is_checked_by_header_and_restores_are_refused(
    pg: Any, tmp_path: Path, keys: tuple[Path, str]
) -> None:
    """Public keys only on the bot: verified by size, SHA-256 and age header; a restore
    is refused naming backup.verify_identity, recorded, nothing created. With a wrong
    identity configured afterwards, the restore fails the same clean way."""
    key_file, public = keys
    with SlackStandin() as standin:
        dep, url = encrypted_deployment(pg, standin, tmp_path / "deploy", [public], None)
        dep.start()
        try:
            message = backup_now(dep)
            assert message.text.startswith("Backup of app succeeded"), _text(message)
            assert "not decrypted" in _text(message)
            backup_id = _backup_id(message.text)
            [artifact] = dep.store_dir.glob(f"app/*-{backup_id}.dump.zst.age")
            manifest = json.loads(
                artifact.with_name(
                    artifact.name.replace(".dump.zst.age", ".manifest.json")
                ).read_text()
            )
            assert manifest["verified"]["method"] == "age-header"
            assert manifest["verified"]["pg_restore_list"] is False

            target = f"refused_{backup_id}"
            pg.drop_database(target)
            shown = restored(dep, f"app {backup_id} --into {target}")
            assert "backup.verify_identity" in shown and "Restored and verified" not in shown
            failed = dep.wait_action("restore.failed", "app")
            assert "backup.verify_identity" in failed.details["error"]
            assert failed.details["stage"] == "download"
            assert not database_exists(pg, target)

            dep.stop()
            wrong = tmp_path / "deploy" / "age-key.txt"
            write_identity(wrong)
            dep.config["backup"]["verify_identity"] = "./age-key.txt"
            dep.start()
            shown = restored(dep, f"app {backup_id} --into {target}")
            assert "holds no private key" in shown and "Restored and verified" not in shown
            assert not database_exists(pg, target)
            records = [i for i in dep.incidents() if i.action == "restore.failed"]
            assert len(records) == 2 and "holds no private key" in records[0].details["error"]
            assert not list((tmp_path / "deploy").rglob("archive.dump"))

            # The artifact itself is good: the operators' key restores it by hand.
            by_hand = pg.create_database(f"byhand_hdr_{backup_id}")
            restore_by_hand(artifact, by_hand, identity=key_file)
            assert database_fingerprint(by_hand) == database_fingerprint(url)
        finally:
            dep.close()


@pytest.fixture
def on_s3_encrypted(
    pg: Any, tmp_path: Path, s3_endpoint: str, bucket: str, keys: tuple[Path, str]
) -> Iterator[tuple[Deployment, str]]:
    key_file, public = keys
    with SlackStandin() as standin:
        dep, url = encrypted_deployment(pg, standin, tmp_path / "deploy", [public], key_file)
        dep.config["storage"] = {
            "s3": {
                "bucket": bucket,
                "prefix": "team/",
                "region": "us-east-1",
                "endpoint_url": "${S3_ENDPOINT_URL}",
            }
        }
        dep.exported.update(
            S3_ENDPOINT_URL=s3_endpoint,
            AWS_ACCESS_KEY_ID="backupbot-test",
            AWS_SECRET_ACCESS_KEY="backupbot-test-secret",
        )
        dep.start()
        yield dep, url
        dep.close()


def test_an_encrypted_backup_on_s3_is_age_and_restores_by_hand_and_through_the_bot(
    on_s3_encrypted: tuple[Deployment, str],
    s3: Any,
    bucket: str,
    pg: Any,
    tmp_path: Path,
    keys: tuple[Path, str],
) -> None:
    dep, url = on_s3_encrypted
    message = backup_now(dep)
    assert message.text.startswith("Backup of app succeeded"), _text(message)
    backup_id = _backup_id(message.text)
    keys_now = s3_keys(s3, bucket)
    assert [k.rsplit("-", 1)[-1] for k in keys_now] == [
        f"{backup_id}.dump.zst.age",
        f"{backup_id}.manifest.json",
    ]
    body = s3.get_object(Bucket=bucket, Key=keys_now[0])["Body"].read()
    assert body.startswith(AGE_MAGIC) and ZSTD_MAGIC not in body[:4]
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=keys_now[1])["Body"].read())
    assert manifest["encryption"]["recipients"] == [keys[1]]
    downloaded = tmp_path / keys_now[0].rsplit("/", 1)[-1]
    downloaded.write_bytes(body)
    by_hand = pg.create_database(f"byhand_s3age_{backup_id}")
    restore_by_hand(downloaded, by_hand, identity=keys[0])
    assert database_fingerprint(by_hand) == database_fingerprint(url)

    target = f"s3age_into_{backup_id}"
    pg.drop_database(target)
    assert "Restored and verified" in restored(dep, f"app {backup_id} --into {target}")
    assert database_fingerprint(pg.url(target)) == database_fingerprint(url)


def test_verification_without_the_identity_fails_a_short_read_back_on_s3(
    pg: Any, tmp_path: Path, s3_endpoint: str, keys: tuple[Path, str]
) -> None:
    """Public keys only: the read-back of the stored copy comes back short (through the
    fault proxy) and fails the backup; nothing is left in the bucket, and the next backup
    succeeds. (A stored copy that is itself short: tests/test_age.py, both stores.)"""
    moto = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = f"age-faults-{secrets.token_hex(4)}"
    moto.create_bucket(Bucket=bucket)
    with SlackStandin() as standin, S3FaultProxy(s3_endpoint) as proxy:
        dep, _url = encrypted_deployment(pg, standin, tmp_path / "deploy", [keys[1]], None)
        dep.config["storage"] = {
            "s3": {
                "bucket": bucket,
                "prefix": "team/",
                "region": "us-east-1",
                "endpoint_url": "${S3_ENDPOINT_URL}",
            }
        }
        dep.exported.update(
            S3_ENDPOINT_URL=proxy.url,
            AWS_ACCESS_KEY_ID="backupbot-test",
            AWS_SECRET_ACCESS_KEY="backupbot-test-secret",
        )
        dep.start()
        try:
            proxy.inject(Fault.truncate("GetObject", key_suffix=".dump.zst.age", keep=0.6))
            message = backup_now(dep)
            assert message.text.startswith("Backup of app failed"), _text(message)
            assert "It was not kept" in message.text
            backup_id = _backup_id(message.text)
            failed = dep.wait_incident(
                lambda i: i.action == "backup.failed" and i.backup_id == backup_id
            )
            assert failed.details["error"] in message.text
            assert [s.action for s in proxy.seen("GetObject")][-1] == "truncate"
            listed = moto.list_objects_v2(Bucket=bucket).get("Contents", [])
            assert [o["Key"] for o in listed if backup_id in o["Key"]] == []

            proxy.clear()
            again = backup_now(dep)
            assert again.text.startswith("Backup of app succeeded"), _text(again)
        finally:
            dep.close()
