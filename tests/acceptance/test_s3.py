"""The real `backupbot serve` with its backups in S3 (moto's server over HTTP), set up as
the README says: `storage.s3` in the config, credentials in the usual AWS variables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backupbot.devkit.sample_data import database_fingerprint
from backupbot.devkit.slack_standin import SlackStandin
from tests.acceptance.conftest import fresh_deployment, source_database
from tests.acceptance.harness import REVIEWER, Deployment
from tests.acceptance.test_flows import _backup_id, _text, backup_now, request_restore
from tests.conftest import s3_keys


@pytest.fixture
def on_s3(
    kind: tuple[str, str], pg: Any, tmp_path: Path, s3_endpoint: str, bucket: str
) -> Iterator[tuple[Deployment, str]]:
    url, _counts = source_database(pg)
    with SlackStandin() as standin:
        dep = fresh_deployment(kind, pg, standin, tmp_path / "deploy", databases={"app": url})
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


def test_a_backup_to_s3_is_stored_with_its_manifest_and_restores_identically(
    on_s3: tuple[Deployment, str], s3: Any, bucket: str, pg: Any
) -> None:
    dep, url = on_s3
    message = backup_now(dep)
    assert message.text.startswith("Backup of app succeeded"), message.text
    backup_id = _backup_id(message.text)
    keys = s3_keys(s3, bucket)
    assert [k.rsplit("-", 1)[-1] for k in keys] == [
        f"{backup_id}.dump.zst",
        f"{backup_id}.manifest.json",
    ]
    assert all(k.startswith("team/app/") for k in keys)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=keys[1])["Body"].read())
    assert manifest["backup_id"] == backup_id
    assert "backupbot-test-secret" not in dep.serve.log_text()  # type: ignore[union-attr]

    target = f"from_s3_{dep.transport}_{dep.state_kind}"
    pg.drop_database(target)
    request, restore_id = request_restore(dep, f"app latest --into {target}")
    dep.click(REVIEWER, "restore_approve", restore_id, request.ts)
    dep.wait_message(lambda m: m.ts == request.ts and "Restored and verified" in _text(m))
    assert database_fingerprint(pg.url(target)) == database_fingerprint(url)
