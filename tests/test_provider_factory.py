"""adapter_for builds each provider's adapter from a database's settings, with the
credential in the header that provider expects; each answers health() against its
stand-in over real HTTP. No section: no adapter."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from backupbot.devkit.providers.databases import ClusterDatabases
from backupbot.devkit.providers.neon import NeonStandIn
from backupbot.devkit.providers.railway import RailwayStandIn
from backupbot.devkit.providers.render import RenderStandIn
from backupbot.devkit.providers.standin import ProviderStandIn
from backupbot.devkit.providers.supabase import SupabaseStandIn
from backupbot.errors import ProviderError
from backupbot.settings import DatabaseSettings
from backupbot.storage.providers.factory import adapter_for

KEY = "key-" + secrets.token_hex(12)
URL = "postgresql://app:pw@127.0.0.1:9/app"
DATABASES = ClusterDatabases("postgresql://u:p@127.0.0.1:9/postgres", {datetime.now(UTC): "x"})


def _standin(provider: str) -> ProviderStandIn:
    if provider == "neon":
        return NeonStandIn(KEY, DATABASES)
    if provider == "supabase":
        return SupabaseStandIn(KEY, DATABASES)
    if provider == "railway":
        return RailwayStandIn(KEY, DATABASES, token_kind="team")
    return RenderStandIn(KEY, DATABASES)


SECTIONS: dict[str, dict[str, Any]] = {
    "neon": {"project_id": "quiet-sky-123456", "branch_id": "br-main-000001"},
    "supabase": {"project_ref": "abcdefghijklmnopqrst"},
    "railway": {"volume_instance_id": "vi-0000-main", "token_kind": "team"},
    "render": {"postgres_id": "dpg-main0000000000000-a"},
}


@pytest.fixture(params=sorted(SECTIONS))
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, ProviderStandIn]]:
    server = _standin(request.param).start()
    yield request.param, server
    server.close()


def test_each_provider_gets_its_adapter_and_answers(served: tuple[str, ProviderStandIn]) -> None:
    provider, server = served
    section = {**SECTIONS[provider], "api_url": server.url, "api_key": KEY}
    db = DatabaseSettings.model_validate(
        {"name": "app", "url": URL, "provider": provider, provider: section}
    )
    adapter = adapter_for(db)
    assert adapter is not None and adapter.provider == provider
    health = adapter.health()
    assert health.reachable and health.detail
    if provider == "railway":
        assert server.requests[0].headers["team-access-token"] == KEY
    else:
        assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    with pytest.raises(ProviderError, match="timezone"):
        adapter.restore(to=datetime(2026, 1, 1, 12, 0), into=adapter.plan("new").supported_into[0])


def test_no_section_no_adapter() -> None:
    assert adapter_for(DatabaseSettings(name="app", url=URL, provider="neon")) is None
    assert adapter_for(DatabaseSettings(name="app", url=URL)) is None
