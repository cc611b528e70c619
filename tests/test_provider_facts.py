"""`ProviderFactsService` against the real Neon stand-in over HTTP: the facts and their
warnings, the five-minute cache, and a provider API answering 500 (a warning that says
so, no exception, and the next read after the cache asks again)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from backupbot.bot.status_composition import status_adapter
from backupbot.commands.provider_facts import ProviderFacts, ProviderFactsService
from backupbot.devkit.providers.databases import ClusterDatabases
from backupbot.devkit.providers.neon import NeonStandIn
from backupbot.devkit.providers.standin import Fault
from backupbot.storage.providers.contract import RecoveryWindow
from tests.conftest import ManualClock, make_settings

KEY = "napi_" + secrets.token_hex(16)


@pytest.fixture
def neon(pg: Any, sample_db: dict[str, Any]) -> Iterator[NeonStandIn]:
    databases = ClusterDatabases(pg.url("postgres"), {datetime.now(UTC): sample_db["name"]})
    server = NeonStandIn(KEY, databases, database=sample_db["name"]).start()
    yield server
    server.close()


def _service(
    neon: NeonStandIn, sample_db: dict[str, Any], clock: ManualClock, monkeypatch: Any
) -> ProviderFactsService:
    monkeypatch.setenv("TEST_NEON_KEY", KEY)
    section = {
        "api_url": neon.url,
        "project_id": neon.project_id,
        "branch_id": next(iter(neon.branches)),
        "api_key": "${TEST_NEON_KEY}",
    }
    settings = make_settings(
        databases=[
            {"name": "app", "url": sample_db["url"], "provider": "neon", "neon": section},
            {"name": "plain", "url": sample_db["url"]},
        ],
        state_url="sqlite://",
        storage={"local": {"path": "/tmp/unused"}},
    )
    return ProviderFactsService(settings.databases, status_adapter, clock)


def _project_reads(neon: NeonStandIn) -> int:
    return len([r for r in neon.requests if r.path.endswith(neon.project_id)])


def test_facts_are_read_once_per_ttl_and_a_500_is_a_warning(
    neon: NeonStandIn, sample_db: dict[str, Any], monkeypatch: Any
) -> None:
    clock = ManualClock(datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
    service = _service(neon, sample_db, clock, monkeypatch)
    assert service.configured == ["app"]  # no section, no provider facts
    facts = service.facts()["app"]
    assert facts.window is not None and facts.window.enabled
    assert facts.window.retention_days == pytest.approx(7)
    assert [str(w) for w in facts.warnings] == [
        "Neon keeps 7 days of history; the runbook asks for 30 days. Raise it in Neon's "
        "settings, or count on the bot's dumps beyond that."
    ]
    reads = _project_reads(neon)
    service.facts()
    assert _project_reads(neon) == reads  # cached

    # the status adapter tries twice: both answered 500
    neon.inject(Fault(500, times=2, path_contains=neon.project_id))
    clock.advance(minutes=6)
    broken = service.facts()["app"]
    assert broken.error is not None and "500" in broken.error, broken.error
    assert str(broken.warnings[0]).startswith("Neon's API could not be read: ")
    assert KEY not in broken.error

    neon.history_retention_seconds = 30 * 86_400
    clock.advance(minutes=6)
    healed = service.facts()["app"]
    assert healed.error is None and healed.warnings == []


def _facts(window: RecoveryWindow, expected: int = 30) -> ProviderFacts:
    return ProviderFacts("app", "render", datetime(2026, 12, 3, tzinfo=UTC), expected, window)


def test_the_window_is_compared_with_the_runbooks_days_with_a_tolerance() -> None:
    assert _facts(RecoveryWindow(True, retention_days=29.999)).warnings == []
    short = _facts(RecoveryWindow(True, retention_days=3))
    assert "Render keeps 3 days of history" in str(short.warnings[0])
    assert _facts(RecoveryWindow(True, retention_days=3), expected=0).warnings == []
    off = _facts(RecoveryWindow(False, reason="free Render instances have no PITR"))
    assert str(off.line(off.checked_at)) == "Render point-in-time recovery: off"
    assert "free Render instances have no PITR" in str(off.warnings[0])
    hours = _facts(RecoveryWindow(True, retention_days=0.5))
    assert "keeps 12 hours of history" in str(hours.warnings[0])
