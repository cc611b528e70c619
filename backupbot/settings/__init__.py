"""The configuration model: one YAML file plus Slack credentials from the environment.

Only the composition root (`backupbot.bot.composition`) calls `load_settings`; everything
else receives the validated objects. Unknown keys are errors, and every problem names the
key and the fix.

Relative paths in the file (the SQLite file of `state_url`, `storage.local.path`,
`restore.work_dir`, `backup.pg_bin_dirs`) mean relative to the file's directory, not to
wherever the command happens to run; `~` is expanded. `resolve_paths` is the one place
that does it, so every `Settings` that leaves this module holds absolute paths.

`sections.py` holds the file's sections, `model.py` the whole file (`Settings`) and the
Slack secrets from the environment, `loading.py` reading and resolving it. Import from
here.
"""

from __future__ import annotations

from backupbot.settings.loading import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    config_path,
    interpolate,
    load_settings,
    parse_settings,
    resolve_path,
    resolve_paths,
    resolve_state_url,
)
from backupbot.settings.model import (
    Settings,
    SlackCredentials,
)
from backupbot.settings.sections import (
    PROVIDERS,
    AccessSettings,
    ApprovalSettings,
    ApprovalStageSettings,
    BackupSettings,
    ChecklistSettings,
    DatabaseSettings,
    DrillSettings,
    EscalationLevel,
    EscalationSettings,
    JobSettings,
    LocalStorage,
    LoggingSettings,
    RestoreSettings,
    RetentionSettings,
    S3Storage,
    ScheduleSettings,
    SlackSettings,
    StorageSettings,
)
from backupbot.settings.targets import TargetSettings

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "PROVIDERS",
    "AccessSettings",
    "ApprovalSettings",
    "ApprovalStageSettings",
    "BackupSettings",
    "ChecklistSettings",
    "DatabaseSettings",
    "DrillSettings",
    "EscalationLevel",
    "EscalationSettings",
    "JobSettings",
    "LocalStorage",
    "LoggingSettings",
    "RestoreSettings",
    "RetentionSettings",
    "S3Storage",
    "ScheduleSettings",
    "Settings",
    "SlackCredentials",
    "SlackSettings",
    "StorageSettings",
    "TargetSettings",
    "config_path",
    "interpolate",
    "load_settings",
    "parse_settings",
    "resolve_path",
    "resolve_paths",
    "resolve_state_url",
]
