"""The configuration model: one YAML file plus Slack credentials from the environment.

Only the composition root (`backupbot.bot.composition`) calls `load_settings`; everything
else receives the validated objects. Unknown keys are errors, and every problem names the
key and the fix.

Relative paths in the file (the SQLite file of `state_url`, `storage.local.path`,
`restore.work_dir`, `backup.pg_bin_dirs`) mean relative to the file's directory, not to
wherever the command happens to run; `~` is expanded. `resolve_paths` is the one place
that does it, so every `Settings` that leaves this module holds absolute paths.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)

from backupbot import dburl
from backupbot.cron import check_cron
from backupbot.errors import ConfigError

DEFAULT_CONFIG_PATH = "backupbot.yml"
CONFIG_ENV = "BACKUPBOT_CONFIG"
PROVIDERS = ("neon", "supabase", "railway", "render", "generic")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# sqlite[+driver]:///path[?query]; the path is relative unless it starts with "/"
_SQLITE_RE = re.compile(r"^(sqlite(?:\+\w+)?:///)([^?]*)(\?.*)?$")
_MISSING_HINTS = {
    ("storage",): "add storage.local.path (a directory) or storage.s3.bucket",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalStorage(_Strict):
    path: Path = Path("./backups")


class S3Storage(_Strict):
    bucket: str = Field(min_length=3)
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    part_size_mb: int = Field(default=8, ge=5, le=512)
    max_concurrency: int = Field(default=2, ge=1, le=16)

    @field_validator("prefix")
    @classmethod
    def _prefix_ends_with_slash(cls, v: str) -> str:
        return v if not v or v.endswith("/") else v + "/"


class StorageSettings(_Strict):
    local: LocalStorage | None = None
    s3: S3Storage | None = None

    def model_post_init(self, _ctx: Any) -> None:
        if (self.local is None) == (self.s3 is None):
            raise ValueError("set exactly one of storage.local or storage.s3")


class SlackSettings(_Strict):
    channel: str = Field(min_length=1)
    approvers: list[str] = []
    approver_group: str | None = None
    required_approvals: int = Field(default=1, ge=1, le=5)
    approval_timeout_minutes: int = Field(default=30, ge=1, le=24 * 60)


def _check_cron(v: str) -> str:
    return check_cron(v)  # 5 fields, or 6 with seconds first (backupbot.cron)


def _check_tz(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("unknown time zone; use an IANA name such as 'UTC'") from exc
    return v


class DatabaseSettings(_Strict):
    name: str
    url: SecretStr
    provider: Literal["neon", "supabase", "railway", "render", "generic"] = "generic"
    schedule: str = "0 2 * * *"
    timezone: str = "UTC"
    retention_days: int = Field(default=30, ge=1, le=3650)
    protected: bool = False  # `--in-place` restores need two approvals
    rto_minutes: int | None = Field(default=None, ge=1)  # overrides restore.rto_minutes

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(
                "use letters, digits, '_', '-' or '.', starting with a letter or digit "
                "(it becomes part of artifact paths)"
            )
        return v

    @field_validator("url")
    @classmethod
    def _valid_url(cls, v: SecretStr) -> SecretStr:
        dburl.check(v.get_secret_value())  # a password that would not parse as meant
        try:
            parts = urlsplit(v.get_secret_value())
        except ValueError:  # its message would quote the netloc, password included
            raise ValueError(
                "could not be parsed as a URL; percent-encode special characters in the "
                "password (e.g. %23 for #)"
            ) from None
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql://user:password@host:port/dbname URL")
        if not parts.path.strip("/"):
            raise ValueError("must name the database, e.g. postgresql://user@host/app")
        return v

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, v: str) -> str:
        return _check_cron(v)

    @field_validator("timezone")
    @classmethod
    def _valid_tz(cls, v: str) -> str:
        return _check_tz(v)


class BackupSettings(_Strict):
    compression_level: int = Field(default=3, ge=1, le=19)
    compression_threads: int = Field(default=1, ge=0, le=64)  # worker threads; 0: one per CPU
    # A database is stale when no verified backup started since its schedule's previous
    # firing plus `stale_grace_hours` (judged at each check), or, if `stale_after_hours` is
    # set, when its newest verified backup is older than that.
    stale_grace_hours: float = Field(default=2, ge=0)
    stale_after_hours: int | None = Field(default=None, ge=1)
    pg_bin_dirs: list[Path] = []
    # A table lock pg_dump (or the row count) cannot get within this fails the backup,
    # naming the table and the session holding it (pg_dump --lock-wait-timeout).
    lock_wait_seconds: float = Field(default=60, gt=0, le=3600)


class RestoreSettings(_Strict):
    rto_minutes: int = Field(default=30, ge=1)  # the recovery-time target reports compare to
    no_owner: bool = True  # pg_restore --no-owner: objects belong to the restoring user
    no_acl: bool = True  # pg_restore --no-acl: skip GRANT/REVOKE (roles differ per server)
    jobs: int = Field(default=0, ge=0, le=32)  # pg_restore -j; 0: one per CPU, at most 4
    work_dir: Path | None = None  # where the archive is unpacked for pg_restore; default TMPDIR
    # pg_restore is stopped (and the restore fails, naming the table and the session
    # holding it) when one of its statements waits longer than this for a lock.
    lock_timeout_seconds: float = Field(default=30, gt=0, le=3600)
    # ... when one statement runs longer than this (off by default: a big table's COPY or
    # index build can take hours).
    statement_timeout_seconds: float | None = Field(default=None, gt=0)
    timeout_minutes: float = Field(default=360, gt=0)  # ... when the whole pg_restore does


class ScheduleSettings(_Strict):
    """The bot's own recurring jobs (per-database backup crons live on each database).

    Cron day-of-month and day-of-week fields must both match (APScheduler's rule), so
    "0 10 1-7 * mon" is the first Monday of the month.
    """

    timezone: str = "UTC"  # for the drill, checklist and retention crons
    grace_hours: float = Field(default=6, ge=0, le=24 * 7)  # late runs within it still run
    retention: str = "0 4 * * *"  # daily retention run
    drill: str = "0 10 1-7 * mon"  # monthly restore drill: first Monday 10:00
    checklist: str = "0 9 1 * *"  # monthly verification checklist: the 1st, 09:00

    @field_validator("retention", "drill", "checklist")
    @classmethod
    def _valid_cron(cls, v: str) -> str:
        return _check_cron(v)

    @field_validator("timezone")
    @classmethod
    def _valid_tz(cls, v: str) -> str:
        return _check_tz(v)


class RetentionSettings(_Strict):
    keep_labels: list[str] = ["pre-deploy", "pre-restore"]  # kept for keep_labeled_days
    keep_labeled_days: int = Field(default=90, ge=1, le=3650)


class ChecklistSettings(_Strict):
    lookback_days: int = Field(default=30, ge=1, le=366)  # "a verified backup on each day"
    remind_after_days: int = Field(default=3, ge=1, le=31)  # unsigned: reminder, then alert
    size_drop_ratio: float = Field(default=0.5, gt=0, lt=1)  # day-over-day below this warns
    size_jump_ratio: float = Field(default=3.0, gt=1)  # day-over-day above this warns


class EscalationLevel(_Strict):
    name: str = Field(min_length=1)  # "DevOps Lead"
    after_minutes: int = Field(default=0, ge=0, le=7 * 24 * 60)  # since the alert opened
    mention: list[str] = []  # Slack user ids (U…/W…, also DMed) or user-group ids (S…)
    provider_support: bool = False  # post the database provider's support contact

    @field_validator("mention")
    @classmethod
    def _slack_ids(cls, v: list[str]) -> list[str]:
        for item in v:
            if not re.fullmatch(r"[UWS][A-Z0-9]{2,}", item):
                raise ValueError(
                    f"{item!r} is not a Slack user id (U…/W…) or user-group id (S…); "
                    "copy it from the profile's ⋮ menu"
                )
        return v


def _default_levels() -> list[EscalationLevel]:
    """The runbook's escalation path, with nobody to mention until configured."""
    return [
        EscalationLevel(name="DevOps Lead", after_minutes=0),
        EscalationLevel(name="Database Admin", after_minutes=15),
        EscalationLevel(name="Provider support", after_minutes=30, provider_support=True),
    ]


class EscalationSettings(_Strict):
    levels: list[EscalationLevel] = Field(default_factory=_default_levels, min_length=1)

    @field_validator("levels")
    @classmethod
    def _ordered(cls, v: list[EscalationLevel]) -> list[EscalationLevel]:
        minutes = [lvl.after_minutes for lvl in v]
        if minutes != sorted(minutes):
            raise ValueError("levels must be in order of after_minutes")
        return v


class JobSettings(_Strict):
    """How long work (backups) is run: by workers sharing a queue in the state database.

    On PostgreSQL state the queue is durable and shared: `backupbot serve` runs one worker
    in-process (`in_process_worker`) and any number of `backupbot worker` processes may
    join. On SQLite state the worker is `serve` itself."""

    max_parallel_jobs: int = Field(default=4, ge=1, le=64)  # per worker process
    max_parallel_per_server: int = Field(default=1, ge=1, le=16)  # per database host:port
    in_process_worker: bool = True


class LoggingSettings(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class Settings(_Strict):
    state_url: str = "sqlite:///backupbot.db"  # relative: next to the config file
    storage: StorageSettings  # required: where backups go is not something to guess
    slack: SlackSettings | None = None
    databases: list[DatabaseSettings] = Field(min_length=1)
    backup: BackupSettings = BackupSettings()
    restore: RestoreSettings = RestoreSettings()
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
        m = _SQLITE_RE.match(self.state_url)
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

    def database(self, name: str) -> DatabaseSettings | None:
        return next((d for d in self.databases if d.name == name), None)

    @property
    def database_names(self) -> list[str]:
        return [d.name for d in self.databases]


class SlackCredentials(_Strict):
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


def config_path(cli_value: str | None, environ: Mapping[str, str]) -> Path:
    """`--config` wins, then $BACKUPBOT_CONFIG, then ./backupbot.yml."""
    return Path(cli_value or environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def interpolate(value: Any, environ: Mapping[str, str], where: str = "") -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string; a missing variable is an error."""
    if isinstance(value, dict):
        return {
            k: interpolate(v, environ, f"{where}.{k}" if where else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate(v, environ, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if environ.get(name) or (name in environ and default is None):
            return environ[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    result = _ENV_RE.sub(sub, value)
    if missing:
        raise ConfigError(
            [
                f"{where}: environment variable {n} is not set; export it or use ${{{n}:-default}}"
                for n in missing
            ]
        )
    return result


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("LocalStorage", "S3Storage", "function-after"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if field is None:
            return []
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", (annotation,)):
            inner = getattr(candidate, "__args__", (candidate,))
            found = next(
                (c for c in inner if isinstance(c, type) and issubclass(c, BaseModel)), None
            )
            if found is not None:
                current = found
                break
        else:
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                current = annotation
            else:
                return []
    return list(getattr(current, "model_fields", {}))


def _describe(err: Any) -> str:
    loc = tuple(err["loc"])
    where = _location(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _known_keys(Settings, loc)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
        return f"{where}: unknown key; {hint}"
    if loc in _MISSING_HINTS and (kind == "missing" or err.get("input", "") is None):
        return f"{where}: required; {_MISSING_HINTS[loc]}"  # also `storage:` left empty
    if kind == "missing":
        return f"{where}: required; add it"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{where}: must be one of {expected}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}"


def resolve_path(value: str | Path, base: Path) -> Path:
    """`value` with `~` expanded, relative to the absolute directory `base`, normalised."""
    return Path(os.path.normpath(base / os.path.expanduser(value)))


def resolve_state_url(url: str, base: Path) -> str:
    """A relative SQLite file (`sqlite:///rel.db`) made absolute (`sqlite:////dir/rel.db`);
    absolute files, in-memory databases and other databases' URLs are returned as they are."""
    m = _SQLITE_RE.match(url)
    if m is None:
        return url
    prefix, path, query = m.group(1), m.group(2), m.group(3) or ""
    if path in ("", ":memory:") or path.startswith(("/", "file:")):
        return url
    return f"{prefix}{resolve_path(path, base)}{query}"


def resolve_paths(settings: Settings, base: Path) -> Settings:
    """The settings with every relative path in them resolved against `base`."""
    base = Path(os.path.abspath(os.path.expanduser(base)))
    storage = settings.storage
    if storage.local is not None:
        local = storage.local.model_copy(update={"path": resolve_path(storage.local.path, base)})
        storage = storage.model_copy(update={"local": local})
    backup = settings.backup.model_copy(
        update={"pg_bin_dirs": [resolve_path(d, base) for d in settings.backup.pg_bin_dirs]}
    )
    work_dir = settings.restore.work_dir
    restore = settings.restore.model_copy(
        update={"work_dir": None if work_dir is None else resolve_path(work_dir, base)}
    )
    resolved = settings.model_copy(
        update={
            "state_url": resolve_state_url(settings.state_url, base),
            "storage": storage,
            "backup": backup,
            "restore": restore,
        }
    )
    resolved._base_dir = base
    return resolved


def parse_settings(
    raw: Any,
    environ: Mapping[str, str],
    source: str = "configuration",
    base_dir: Path | None = None,
) -> Settings:
    """Validate `raw` (the parsed YAML). Relative paths in it resolve against `base_dir`
    (`load_settings` passes the config file's directory; default: the current directory)."""
    if not isinstance(raw, dict):
        raise ConfigError(["the file must be a YAML mapping with a databases: list"], source)
    try:
        data = interpolate(raw, environ)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = list(dict.fromkeys(_describe(e) for e in exc.errors()))
        raise ConfigError(problems, source) from None
    return resolve_paths(settings, Path.cwd() if base_dir is None else base_dir)


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    if not path.exists():
        raise ConfigError(
            [f"{path} does not exist; create it (see README 'Configuration') or pass --config"],
            str(path),
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            [f"not valid YAML{at}: {getattr(exc, 'problem', exc)}"], str(path)
        ) from None
    file = Path(os.path.abspath(path))
    settings = parse_settings(raw, environ, str(path), base_dir=file.parent)
    settings._config_file = file
    return settings
