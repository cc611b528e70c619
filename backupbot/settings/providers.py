"""Per-database provider sections (`neon:`, `supabase:`, `railway:`, `render:`): where
the provider's API finds the database, and the API credential (write it as `${VAR}` so
the secret stays in the environment). With a section, restores to a point in time and
the provider's recovery facts go through the provider's API; without one, `provider:`
is a label (support contacts, connection advice)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The API's base URL; the default is the provider's public API (tests point it at
    # the stand-ins in backupbot/devkit/providers).
    api_url: str
    api_key: SecretStr  # e.g. ${NEON_API_KEY}; never logged or shown
    # How long one provider operation (a restore) may run before the bot gives up
    # following it and says so (the provider's operation itself is not cancelled).
    operation_timeout_minutes: int = Field(default=60, ge=1, le=24 * 60)
    # How often a running restore asks the provider how its operation is doing.
    poll_seconds: float = Field(default=10.0, ge=0.05, le=600)
    # The recovery window the runbook asks of the provider (its retention: 30 days). A
    # provider keeping less, or with point-in-time recovery off, is a warning in
    # `/backup status` and the checklist; 0: do not compare the window.
    expected_recovery_days: int = Field(default=30, ge=0, le=3650)
    # While that warning holds, also open an alert (escalated like a failed backup).
    alert_on_recovery_gap: bool = False

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("use an http(s):// URL")
        return v.rstrip("/")


class NeonSettings(_Section):
    """A Neon branch: `neon: {project_id: …, branch_id: br-…, api_key: ${NEON_API_KEY}}`."""

    api_url: str = "https://console.neon.tech/api/v2"
    project_id: str = Field(pattern=r"^[a-z0-9-]{1,60}$")
    branch_id: str = Field(pattern=r"^[a-z0-9-]{1,60}$")


class SupabaseSettings(_Section):
    """A Supabase project: `supabase: {project_ref: …, api_key: ${SUPABASE_ACCESS_TOKEN}}`."""

    api_url: str = "https://api.supabase.com"
    project_ref: str = Field(pattern=r"^[a-z]{20}$")


class RailwaySettings(_Section):
    """A Railway Postgres volume: `volume_instance_id`, or `environment_id` and
    `service_id` (the bot looks up the service's volume instance);
    `api_key: ${RAILWAY_TOKEN}` with `token_kind` saying which header carries it."""

    api_url: str = "https://backboard.railway.com/graphql/v2"
    token_kind: str = Field(default="project", pattern=r"^(project|team|account)$")
    volume_instance_id: str | None = None
    environment_id: str | None = None
    service_id: str | None = None

    @model_validator(mode="after")
    def _locates_volume(self) -> RailwaySettings:
        if self.volume_instance_id is None and (
            self.environment_id is None or self.service_id is None
        ):
            raise ValueError("give volume_instance_id, or environment_id and service_id")
        return self


class RenderSettings(_Section):
    """A Render Postgres instance: `render: {postgres_id: dpg-…, api_key: ${RENDER_API_KEY}}`."""

    api_url: str = "https://api.render.com/v1"
    postgres_id: str = Field(min_length=1, max_length=100)


ProviderSection = NeonSettings | SupabaseSettings | RailwaySettings | RenderSettings
