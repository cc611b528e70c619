"""`Settings`, the whole configuration file, and `SlackCredentials`, the Slack secrets
that only ever come from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from backupbot import dburl
from backupbot.settings.sections import (
    AccessSettings,
    ApprovalSettings,
    BackupSettings,
    ChecklistSettings,
    DatabaseSettings,
    DrillSettings,
    EscalationSettings,
    JobSettings,
    LoggingSettings,
    RestoreSettings,
    RetentionSettings,
    ScheduleSettings,
    SlackSettings,
    StorageSettings,
    Strict,
)
from backupbot.settings.targets import TargetSettings, check_drill_targets, check_targets

# sqlite[+driver]:///path[?query]; the path is relative unless it starts with "/"
SQLITE_URL = re.compile(r"^(sqlite(?:\+\w+)?:///)([^?]*)(\?.*)?$")


class Settings(Strict):
    state_url: str = "sqlite:///backupbot.db"  # relative: next to the config file
    storage: StorageSettings  # required: where backups go is not something to guess
    slack: SlackSettings | None = None
    access: AccessSettings | None = None
    approvals: ApprovalSettings = ApprovalSettings()
    databases: list[DatabaseSettings] = Field(min_length=1)
    targets: dict[str, TargetSettings] = {}  # restore/drill targets on other servers
    backup: BackupSettings = BackupSettings()
    restore: RestoreSettings = RestoreSettings()
    drill: DrillSettings = DrillSettings()
    schedules: ScheduleSettings = ScheduleSettings()
    retention: RetentionSettings = RetentionSettings()
    checklist: ChecklistSettings = ChecklistSettings()
    escalation: EscalationSettings = EscalationSettings()
    jobs: JobSettings = JobSettings()
    logging: LoggingSettings = LoggingSettings()
    _config_file: Path | None = PrivateAttr(default=None)
    _base_dir: Path | None = PrivateAttr(default=None)

    @property
    def config_file(self) -> Path | None:
        """The absolute path of the file these settings came from (None: built from a dict)."""
        return self._config_file

    @property
    def base_dir(self) -> Path | None:
        """The directory relative paths were resolved against (None: not resolved)."""
        return self._base_dir

    @property
    def state_file(self) -> Path | None:
        """The SQLite file of `state_url`; None for PostgreSQL or an in-memory database."""
        m = SQLITE_URL.match(self.state_url)
        if m is None or m.group(2) in ("", ":memory:") or m.group(2).startswith("file:"):
            return None
        return Path(m.group(2))

    @field_validator("state_url")
    @classmethod
    def _valid_state_url(cls, v: str) -> str:
        return dburl.check(v)

    @field_validator("databases")
    @classmethod
    def _unique_names(cls, v: list[DatabaseSettings]) -> list[DatabaseSettings]:
        seen: set[str] = set()
        for db in v:
            if db.name in seen:
                raise ValueError(f"database name {db.name!r} appears twice; names must be unique")
            seen.add(db.name)
        return v

    @model_validator(mode="after")
    def _valid_targets(self) -> Settings:
        check_targets(self.targets, self.databases)
        check_drill_targets(self.drill.target, self.databases, self.targets)
        return self

    def database(self, name: str) -> DatabaseSettings | None:
        return next((d for d in self.databases if d.name == name), None)

    @property
    def database_names(self) -> list[str]:
        return [d.name for d in self.databases]

    def drill_target(self, database: str) -> str | None:
        """The target a drill of `database` restores on (None: the source's own server)."""
        db = self.database(database)
        return (db.drill_target if db else None) or self.drill.target


class SlackCredentials(Strict):
    """Slack secrets, always from the environment, never from the file."""

    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    api_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SlackCredentials:
        def secret(name: str) -> SecretStr | None:
            value = environ.get(name)
            return SecretStr(value) if value else None

        return cls(
            bot_token=secret("SLACK_BOT_TOKEN"),
            signing_secret=secret("SLACK_SIGNING_SECRET"),
            app_token=secret("SLACK_APP_TOKEN"),
            api_url=environ.get("SLACK_API_URL") or None,
        )

    @property
    def socket_mode(self) -> bool:
        return self.app_token is not None

    def problems_for_serving(self) -> list[str]:
        problems = []
        if self.bot_token is None:
            problems.append("SLACK_BOT_TOKEN is not set: export the app's xoxb- bot token")
        if self.app_token is None and self.signing_secret is None:
            problems.append(
                "set SLACK_APP_TOKEN (xapp-, Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)"
            )
        return problems
