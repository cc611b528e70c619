"""The /metrics collector on a real SQLite state database, scraped through the WSGI app
and parsed with prometheus_client's own parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine, insert

from backupbot.bot.runtime.metrics import StateCollector, registry
from backupbot.bot.slack.app import wsgi_app
from backupbot.settings import Settings
from backupbot.storage.models import BackupRow
from backupbot.storage.state import create_state_engine, migrate

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def _settings() -> Settings:
    return Settings.model_validate(
        {
            "storage": {"local": {"path": "/tmp/x"}},
            "slack": {"channel": "C0OPS", "approvers": ["U0BOB"]},
            "databases": [{"name": "app", "url": "postgresql://u:s3cret@h/app"}],
        }
    )


def _scrape(engine: Engine) -> tuple[str, dict[tuple[str, tuple[Any, ...]], float]]:
    app = wsgi_app(None, metrics=registry(StateCollector(engine, _settings())))
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h: status.append(s))).decode()
    assert status == ["200 OK"]
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
    }
    return body, values


def _backup(engine: Engine, id: str, status: str, at: datetime, **kw: Any) -> None:
    row = dict(
        id=id,
        database="app",
        status=status,
        actor="U0",
        started_at=at,
        heartbeat_at=at,
        finished_at=at + timedelta(seconds=30),
        store="local",
    )
    with engine.begin() as conn:
        conn.execute(insert(BackupRow).values(**row, **kw))


def test_backups_are_reported_from_the_state_database(tmp_path: Path) -> None:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    _backup(
        engine,
        "b1",
        "succeeded",
        T0,
        stored_size=1234,
        raw_size=5678,
        manifest={"row_counts": {"a": 3, "b": 4}},
    )
    _backup(engine, "b2", "failed", T0 + timedelta(hours=1), error="boom")
    body, v = _scrape(engine)
    db = (("database", "app"),)
    assert (
        v[("backupbot_backup_last_success_timestamp_seconds", db)]
        == (T0 + timedelta(seconds=30)).timestamp()
    )
    assert v[("backupbot_backup_last_stored_bytes", db)] == 1234
    assert v[("backupbot_backup_last_raw_bytes", db)] == 5678
    assert v[("backupbot_backup_last_rows", db)] == 7
    assert v[("backupbot_backup_last_attempt_success", db)] == 0
    assert v[("backupbot_backups", (("database", "app"), ("status", "failed")))] == 1
    assert v[("backupbot_rto_target_seconds", db)] == 1800
    assert v[("backupbot_state_database_up", ())] == 1
    assert "s3cret" not in body and "postgresql://" not in body


def test_a_missing_state_database_answers_up_zero_not_500(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'state.db'}")
    _, v = _scrape(engine)
    assert v[("backupbot_state_database_up", ())] == 0
    assert ("backupbot_scheduler_leader", (("scope", "process"),)) in v


def test_the_example_rules_name_only_metrics_the_exporter_produces(tmp_path: Path) -> None:
    import re

    import yaml

    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    _backup(engine, "b1", "succeeded", T0)
    body, _ = _scrape(engine)
    produced = set(re.findall(r"^# TYPE (\w+)", body, re.M))
    produced |= {n + "_total" for n in produced}
    rules = Path(__file__).parents[1] / "deploy/prometheus/backupbot.rules.yml"
    doc = yaml.safe_load(rules.read_text())
    exprs = [r["expr"] for g in doc["groups"] for r in g["rules"]]
    assert len(exprs) >= 6
    for expr in exprs:
        for name in re.findall(r"\bbackupbot_\w+", expr):
            assert name in produced, (name, expr)
