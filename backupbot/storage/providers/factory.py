"""The one place an adapter is built from a database's settings: its provider section,
its credential in the header the provider expects, and the configured database URL
(how the bot connects to a restored result that keeps the database's roles)."""

from __future__ import annotations

import time
from collections.abc import Callable

from backupbot.settings import DatabaseSettings
from backupbot.settings.providers import (
    NeonSettings,
    RailwaySettings,
    RenderSettings,
    SupabaseSettings,
)
from backupbot.storage.providers.contract import ProviderAdapter
from backupbot.storage.providers.http import ProviderHttp, RetryPolicy
from backupbot.storage.providers.neon import NeonAdapter
from backupbot.storage.providers.railway import RailwayAdapter, railway_headers
from backupbot.storage.providers.render import RenderAdapter
from backupbot.storage.providers.supabase import SupabaseAdapter


def adapter_for(
    db: DatabaseSettings,
    *,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = 30.0,
    policy: RetryPolicy | None = None,
) -> ProviderAdapter | None:
    """The adapter of the database's provider; None without a provider section.
    `timeout` and `policy` bound each request (status reads ask for less patience than
    a restore)."""
    section = db.provider_section
    if section is None:
        return None
    url = db.url.get_secret_value()
    bearer = {"Authorization": f"Bearer {section.api_key.get_secret_value()}"}

    def http(headers: dict[str, str]) -> ProviderHttp:
        return ProviderHttp(
            db.provider, section.api_url, headers, sleep=sleep, timeout=timeout, policy=policy
        )

    if isinstance(section, NeonSettings):
        return NeonAdapter(section, url, http(bearer))
    if isinstance(section, SupabaseSettings):
        return SupabaseAdapter(section, url, http(bearer))
    if isinstance(section, RailwaySettings):
        return RailwayAdapter(section, url, http(railway_headers(section)))
    if isinstance(section, RenderSettings):
        return RenderAdapter(section, url, http(bearer))
    raise AssertionError(f"no adapter for {type(section).__name__}")
