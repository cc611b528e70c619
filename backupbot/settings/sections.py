"""The sections of the configuration file, one pydantic model each (storage, slack,
access, databases, backup, restore, schedules, retention, checklist, escalation, jobs,
logging). Unknown keys are errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from backupbot import dburl
from backupbot.cron import check_cron
from backupbot.settings.providers import (
    NeonSettings,
    ProviderSection,
    RailwaySettings,
    RenderSettings,
    SupabaseSettings,
)

PROVIDERS = ("neon", "supabase", "railway", "render", "generic")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def check_pg_url(v: SecretStr) -> SecretStr:
    """A postgresql:// URL that names its database, checked without quoting the password."""
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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalStorage(Strict):
    path: Path = Path("./backups")


class ObjectLockSettings(Strict):
    """S3 Object Lock retention put on every artifact and manifest written: no one can
    delete them for `days` days (GOVERNANCE: except with s3:BypassGovernanceRetention;
    COMPLIANCE: no one, not even the account root). The bucket needs Object Lock enabled."""

    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    days: int = Field(ge=1, le=36500)


class S3Storage(Strict):
    bucket: str = Field(min_length=3)
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    part_size_mb: int = Field(default=8, ge=5, le=512)
    max_concurrency: int = Field(default=2, ge=1, le=16)
    object_lock: ObjectLockSettings | None = None

    @field_validator("prefix")
    @classmethod
    def _prefix_ends_with_slash(cls, v: str) -> str:
        return v if not v or v.endswith("/") else v + "/"


class StorageSettings(Strict):
    local: LocalStorage | None = None
    s3: S3Storage | None = None

    def model_post_init(self, _ctx: Any) -> None:
        if (self.local is None) == (self.s3 is None):
            raise ValueError("set exactly one of storage.local or storage.s3")


class SlackSettings(Strict):
    channel: str = Field(min_length=1)
    approvers: list[str] = []
    approver_group: str | None = None
    required_approvals: int = Field(default=1, ge=1, le=5)
    approval_timeout_minutes: int = Field(default=30, ge=1, le=24 * 60)
    team_id: str | None = None  # when set, requests from other workspaces are refused
    enterprise_id: str | None = None  # Enterprise Grid: the organisation requests come from


RoleName = Literal["viewer", "operator", "approver", "admin"]
_MEMBER_RE = re.compile(r"^[UWS][A-Z0-9]{2,}$")


class AccessSettings(Strict):
    """Who may do what (`commands/access.py`). Without this section everyone in the
    channel is an operator and approvers are those `slack:` names."""

    roles: dict[RoleName, list[str]] = {}  # Slack user ids (U…/W…) and user-group ids (S…)
    default_role: RoleName | Literal["none"] = "viewer"  # channel members granted nothing
    channels: list[str] = []  # channels besides slack.channel that take /backup

    @field_validator("roles")
    @classmethod
    def _valid_members(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for role, members in v.items():
            bad = [m for m in members if not _MEMBER_RE.match(m)]
            if bad:
                raise ValueError(
                    f"{role}: {', '.join(bad)} is not a Slack user id (U…/W…) or user-group id "
                    "(S…); find ids in a profile's or group's ⋮ menu, 'Copy member ID'"
                )
        return v


class ApprovalStageSettings(Strict):
    """One approval stage: `need` approvals (or `all`) from `approvers`."""

    name: str = Field(min_length=1, max_length=40)  # "DBA", shown on the request
    approvers: list[str] = []  # user ids (U…/W…) and group ids (S…); [] = the approver role
    need: int | Literal["all"] = Field(default=1)

    @field_validator("approvers")
    @classmethod
    def _valid_members(cls, v: list[str]) -> list[str]:
        bad = [m for m in v if not _MEMBER_RE.match(m)]
        if bad:
            raise ValueError(
                f"{', '.join(bad)} is not a Slack user id (U…/W…) or user-group id (S…)"
            )
        return v

    @field_validator("need")
    @classmethod
    def _need(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= 5:
            raise ValueError("need is 1 to 5 approvals, or all")
        return v

    def model_post_init(self, _ctx: Any) -> None:
        if self.need == "all" and not self.approvers:
            raise ValueError(f"stage {self.name}: need: all needs approvers to name")


class ApprovalSettings(Strict):
    """Who approves restores, in stages taken in order (`commands/approval_stages.py`).

    Without `stages`, every restore needs `slack.required_approvals` from the approver
    role. `protected_in_place` is the policy for restoring in place over a database
    marked `protected`; without it, the `stages` policy with at least two approvals."""

    stages: list[ApprovalStageSettings] = Field(default=[], max_length=3)
    protected_in_place: list[ApprovalStageSettings] = Field(default=[], max_length=3)


def _check_cron(v: str) -> str:
    return check_cron(v)  # 5 fields, or 6 with seconds first (backupbot.cron)


def _check_tz(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("unknown time zone; use an IANA name such as 'UTC'") from exc
    return v


class DatabaseSettings(Strict):
    name: str
    url: SecretStr
    provider: Literal["neon", "supabase", "railway", "render", "generic"] = "generic"
    schedule: str = "0 2 * * *"
    timezone: str = "UTC"
    retention_days: int = Field(default=30, ge=1, le=3650)
    protected: bool = False  # `--in-place` restores need two approvals
    rto_minutes: int | None = Field(default=None, ge=1)  # overrides restore.rto_minutes
    drill_target: str | None = None  # overrides drill.target for this database
    # The provider's API for point-in-time restores and recovery facts (settings/providers.py)
    neon: NeonSettings | None = None
    supabase: SupabaseSettings | None = None
    railway: RailwaySettings | None = None
    render: RenderSettings | None = None

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
        return check_pg_url(v)

    @model_validator(mode="after")
    def _one_provider_section(self) -> DatabaseSettings:
        given = [p for p in ("neon", "supabase", "railway", "render") if getattr(self, p)]
        for section in given:
            if section != self.provider:
                raise ValueError(
                    f"has a {section}: section but provider: {self.provider}; "
                    f"set provider: {section} or remove the section"
                )
        return self

    @property
    def provider_section(self) -> ProviderSection | None:
        """The provider API section of this database's provider, if configured."""
        section: ProviderSection | None = getattr(self, self.provider, None)
        return section

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, v: str) -> str:
        return _check_cron(v)

    @field_validator("timezone")
    @classmethod
    def _valid_tz(cls, v: str) -> str:
        return _check_tz(v)


class BackupSettings(Strict):
    compression_level: int = Field(default=3, ge=1, le=19)
    compression_threads: int = Field(default=1, ge=0, le=64)  # worker threads; 0: one per CPU
    # A database is stale when no verified backup started since its schedule's previous
    # firing plus `stale_grace_hours` (judged at each check), or, if `stale_after_hours` is
    # set, when its newest verified backup is older than that.
    stale_grace_hours: float = Field(default=2, ge=0)
    stale_after_hours: int | None = Field(default=None, ge=1)
    pg_bin_dirs: list[Path] = []
    jobs: int = Field(default=1, ge=1, le=32)  # >1: pg_dump -Fd -j N, stored as tar+zstd
    # A table lock pg_dump (or the row count) cannot get within this fails the backup,
    # naming the table and the session holding it (pg_dump --lock-wait-timeout).
    lock_wait_seconds: float = Field(default=60, gt=0, le=3600)
    # Encrypt every backup with age to these X25519 recipients (public keys, age1…).
    encrypt_to: list[str] = []
    # An age identity file the bot may read: full verification of encrypted backups,
    # and the key restores and drills decrypt with. Relative to this file.
    verify_identity: Path | None = None
    verify: Literal["checksums", "full"] = "checksums"  # README "Verification": why default

    @field_validator("encrypt_to")
    @classmethod
    def _age_recipients(cls, value: list[str]) -> list[str]:
        if not value:
            return value
        from backupbot.storage.agestream import parse_recipient  # pyrage, zstandard

        for index, recipient in enumerate(value):
            try:
                parse_recipient(recipient)
            except ValueError as exc:
                raise ValueError(f"entry {index + 1}: {exc}") from None
        if len(set(value)) != len(value):
            raise ValueError("lists a recipient more than once")
        return [r.strip() for r in value]


class DrillSettings(Strict):
    """Restore drills beyond their schedule (`schedules.drill`)."""

    # No passed drill of a database for this long opens a `drill_missing` alert (counted
    # from its first backup when it was never drilled); the next passed drill resolves it.
    max_age_days: int = Field(default=35, ge=1, le=366)
    # A message this many days before each scheduled drill: what will be restored where,
    # and how long it should take. 0: no reminder.
    remind_days_before: int = Field(default=2, ge=0, le=14)
    # Drills restore into a scratch database on this target's server (a name under
    # `targets:`) instead of the source's own; a database's `drill_target` overrides it.
    target: str | None = None


class RestoreSettings(Strict):
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
    # A break-glass restore needs an approver's review (its notice's Reviewed button)
    # within this many hours, or it escalates like an alert.
    break_glass_review_hours: float = Field(default=24, gt=0, le=24 * 30)


class ScheduleSettings(Strict):
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


class RetentionSettings(Strict):
    keep_labels: list[str] = ["pre-deploy", "pre-restore"]  # kept for keep_labeled_days
    keep_labeled_days: int = Field(default=90, ge=1, le=3650)


class ChecklistSettings(Strict):
    lookback_days: int = Field(default=30, ge=1, le=366)  # "a verified backup on each day"
    remind_after_days: int = Field(default=3, ge=1, le=31)  # unsigned: reminder, then alert
    size_drop_ratio: float = Field(default=0.5, gt=0, lt=1)  # day-over-day below this warns
    size_jump_ratio: float = Field(default=3.0, gt=1)  # day-over-day above this warns


class EscalationLevel(Strict):
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


class EscalationSettings(Strict):
    levels: list[EscalationLevel] = Field(default_factory=_default_levels, min_length=1)
    # An acknowledged alert still failing this long after the acknowledgement loses it
    # and pages again (PagerDuty's acknowledgement timeout); 0: an acknowledgement holds.
    reack_after_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60)

    @field_validator("levels")
    @classmethod
    def _ordered(cls, v: list[EscalationLevel]) -> list[EscalationLevel]:
        minutes = [lvl.after_minutes for lvl in v]
        if minutes != sorted(minutes):
            raise ValueError("levels must be in order of after_minutes")
        return v


class JobSettings(Strict):
    """How long work (backups) is run: by workers sharing a queue in the state database.

    On PostgreSQL state the queue is durable and shared: `backupbot serve` runs one worker
    in-process (`in_process_worker`) and any number of `backupbot worker` processes may
    join. On SQLite state the worker is `serve` itself."""

    max_parallel_jobs: int = Field(default=4, ge=1, le=64)  # per worker process
    max_parallel_per_server: int = Field(default=1, ge=1, le=16)  # per database host:port
    in_process_worker: bool = True


class LoggingSettings(Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"
