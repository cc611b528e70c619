"""The parts the services are built on: the artifact store, the job queue, the Slack
client and the approver directory, each built from its settings."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backupbot.bot.runtime.jobs import BackgroundJobs
from backupbot.commands.access import AccessRules, grants_from
from backupbot.commands.approval_stages import DEFAULT_STAGE, Stage
from backupbot.commands.approvals import ApprovalPolicy, at_least_two
from backupbot.commands.command_spec import Role
from backupbot.errors import BackupbotError
from backupbot.settings import (
    ApprovalStageSettings,
    DatabaseSettings,
    Settings,
    SlackCredentials,
    SlackSettings,
    StorageSettings,
)
from backupbot.storage.artifacts import ArtifactStore
from backupbot.storage.job_queue import JobQueue, LocalQueue, PostgresQueue
from backupbot.storage.local_store import LocalStore
from backupbot.storage.pgconn import ConnInfo

if TYPE_CHECKING:
    from slack_sdk import WebClient


def build_store(storage: StorageSettings, verify: str = "checksums") -> ArtifactStore:
    """The artifact store; on S3 with `verify` "checksums" (`backup.verify`) every upload
    carries SHA-256 checksums that S3 checks (`s3_upload.py`)."""
    if storage.local is not None:
        return LocalStore(Path(storage.local.path))
    import boto3  # imported here: only S3 users pay for it (time and memory)
    from botocore.config import Config as BotoConfig

    from backupbot.storage.s3_store import S3Store
    from backupbot.storage.s3_support import LockPolicy

    s3 = storage.s3
    assert s3 is not None
    checksums = verify == "checksums"
    # s3=: with a signed SHA-256 checksum header on every part, signing the payload as well
    # (botocore does on plain http endpoints) hashes every byte a second time for nothing.
    client = boto3.client(
        "s3",
        region_name=s3.region,
        endpoint_url=s3.endpoint_url,
        aws_access_key_id=s3.access_key_id.get_secret_value() if s3.access_key_id else None,
        aws_secret_access_key=(
            s3.secret_access_key.get_secret_value() if s3.secret_access_key else None
        ),
        config=BotoConfig(
            retries={"max_attempts": 5, "mode": "standard"},
            s3={"payload_signing_enabled": False} if checksums else None,
        ),
    )
    return S3Store(
        client,
        s3.bucket,
        s3.prefix,
        part_size=s3.part_size_mb << 20,
        max_concurrency=s3.max_concurrency,
        object_lock=LockPolicy(s3.object_lock.mode, s3.object_lock.days)
        if s3.object_lock
        else None,
        checksums=checksums,
    )


def durable_state(settings: Settings) -> bool:
    """Whether the state database is PostgreSQL (jobs then go through the shared queue)."""
    return not settings.state_url.startswith("sqlite")


def build_queue(settings: Settings, jobs: BackgroundJobs) -> JobQueue:
    """procrastinate on PostgreSQL state; threads in this process on SQLite."""
    limits = settings.jobs
    if durable_state(settings):
        conninfo = "postgresql://" + settings.state_url.split("://", 1)[1]
        return PostgresQueue(
            conninfo,
            max_parallel=limits.max_parallel_jobs,
            per_server=limits.max_parallel_per_server,
        )
    return LocalQueue(
        jobs.submit_long,
        max_parallel=limits.max_parallel_jobs,
        per_server=limits.max_parallel_per_server,
    )


STORE_SERVER = "store"  # retention's "server" in the job limits: one run at a time


def server_key(db: DatabaseSettings) -> str:
    """The `host:port` a database lives on, for the per-server job limit."""
    return url_server_key(db.url.get_secret_value(), f"unparsed:{db.name}")


def url_server_key(url: str, unparsed: str) -> str:
    """The `host:port` of a connection URL (`unparsed` when it cannot be read)."""
    try:
        conn = ConnInfo.from_url(url)
    except BackupbotError:
        return unparsed
    return f"{conn.host}:{conn.port}"


def build_slack_client(creds: SlackCredentials) -> WebClient | None:
    """A Web API client with retries on rate limits and dropped connections, or None
    without a bot token (CLI use with Slack not set up)."""
    if creds.bot_token is None:
        return None
    from slack_sdk import WebClient
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
    )

    kwargs: dict[str, Any] = {}
    if creds.api_url:
        kwargs["base_url"] = creds.api_url.rstrip("/") + "/"
    client = WebClient(token=creds.bot_token.get_secret_value(), timeout=30, **kwargs)
    client.retry_handlers = [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=5),
    ]
    return client


class SlackApproverDirectory:
    """What Slack knows about people: members of a user group (`usergroups.users.list`)
    and whether a user is a guest (`users.info`)."""

    def __init__(self, client: WebClient) -> None:
        self._client = client

    def members(self, group: str) -> frozenset[str]:
        from slack_sdk.errors import SlackApiError

        from backupbot.errors import BackupbotError

        try:
            users = self._client.usergroups_users_list(usergroup=group)["users"]
        except SlackApiError as exc:
            raise BackupbotError(
                f"Could not read the approver group {group} from Slack "
                f"({exc.response.get('error')}); try again, or list approvers by user id."
            ) from None
        return frozenset(str(u) for u in users or [])

    def is_guest(self, user: str) -> bool:
        from slack_sdk.errors import SlackApiError

        from backupbot.errors import BackupbotError

        try:
            info = self._client.users_info(user=user)["user"]
        except SlackApiError as exc:
            raise BackupbotError(
                f"Could not look up {user} in Slack ({exc.response.get('error')}); try again."
            ) from None
        return bool(info.get("is_restricted") or info.get("is_ultra_restricted"))


def access_rules(settings: Settings) -> AccessRules:
    """The access table from `access:` (see `commands/access.py`); without that section,
    everyone in the channel is an operator and the approvers are those `slack:` names."""
    slack = settings.slack
    channels = frozenset([slack.channel] if slack else [])
    access = settings.access
    configured = {str(role): members for role, members in (access.roles if access else {}).items()}
    default = "operator" if access is None else access.default_role
    return AccessRules(
        grants=grants_from(
            configured,
            slack.approvers if slack else [],
            slack.approver_group if slack else None,
        ),
        default=None if default == "none" else Role[default.upper()],
        channels=channels | frozenset(access.channels if access else []),
        team=slack.team_id if slack else None,
        enterprise=slack.enterprise_id if slack else None,
    )


def approval_policy(settings: Settings) -> ApprovalPolicy:
    """The approval stages from `approvals:`; without them, one stage of the approver
    role needing `slack.required_approvals` (protected in-place restores: two)."""
    slack = settings.slack or SlackSettings(channel="-")
    stages = tuple(_stage(s) for s in settings.approvals.stages) or (
        Stage(DEFAULT_STAGE, slack.required_approvals),
    )
    protected = tuple(_stage(s) for s in settings.approvals.protected_in_place)
    return ApprovalPolicy(
        stages=stages,
        protected_in_place=protected or at_least_two(stages),
        timeout=timedelta(minutes=slack.approval_timeout_minutes),
    )


def _stage(s: ApprovalStageSettings) -> Stage:
    return Stage(s.name, s.need, tuple(s.approvers))
