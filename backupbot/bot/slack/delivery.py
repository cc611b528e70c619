"""Posting and updating channel messages.

`Notifier` is the one delivery contract: `post` and `update` return on success and raise
`DeliveryError` otherwise, whose `permanent` flag says whether trying again can help
(`channel_not_found`, `invalid_auth`, ... cannot; a 429, a 5xx, a timeout or a dropped
connection can, and `retry_after` says when, if Slack said).

The module functions `post` and `update` fail softly on top of it: a Slack error is logged
and reported as a missing result, so the work it describes (a backup, a restore) goes on.
Every permanent failure is noted in `HEALTH` (logged once per channel and error, not on
every retry), which `/healthz` reports as "degraded" until a delivery to that channel
succeeds again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError, SlackClientError

from backupbot.bot.slack.kit import Message

if TYPE_CHECKING:
    from slack_sdk import WebClient

log = logging.getLogger(__name__)

# Errors that stay until someone changes Slack or the config: retrying cannot help.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
        "ekm_access_denied",
        "team_access_not_granted",
        "restricted_action",
        "restricted_action_read_only_channel",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
    }
)
# Errors Slack itself calls temporary; any HTTP 429 or 5xx is transient too.
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# Problems of the token or workspace rather than of one channel: any success clears them.
TOKEN_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "not_allowed_token_type",
        "team_access_not_granted",
    }
)


class DeliveryError(Exception):
    """A message that did not reach Slack. `permanent`: trying again cannot help;
    `retry_after`: seconds Slack asked to wait (429), if it said."""

    def __init__(
        self,
        error: str,
        *,
        permanent: bool,
        channel: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        where = f" in {channel}" if channel else ""
        super().__init__(f"Slack delivery{where} failed: {error}")
        self.error = error
        self.permanent = permanent
        self.channel = channel
        self.status = status
        self.retry_after = retry_after
        self.first_seen = False  # set by Notifier: the first time this process saw it


def _retry_after(headers: Any) -> float | None:
    if not headers:
        return None
    value = None
    for name in ("Retry-After", "retry-after"):
        if name in headers:
            value = headers[name]
            break
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def classify(exc: BaseException, channel: str | None = None) -> DeliveryError:
    """`exc` (from a slack_sdk call) as a `DeliveryError`."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, SlackApiError):
        resp = exc.response
        status = int(getattr(resp, "status_code", 0) or 0)
        data = getattr(resp, "data", None)
        error = str(data.get("error") or "") if isinstance(data, dict) else ""
        if status == 429 or error == "ratelimited":
            wait = _retry_after(getattr(resp, "headers", None))
            return DeliveryError(
                "ratelimited", permanent=False, channel=channel, status=status, retry_after=wait
            )
        if status >= 500 or error in TRANSIENT_ERRORS:
            return DeliveryError(
                error or f"HTTP {status}", permanent=False, channel=channel, status=status
            )
        if status not in (0, 200) and not error:
            return DeliveryError(f"HTTP {status}", permanent=False, channel=channel, status=status)
        # Any other answer Slack gave is about this request and would come again.
        return DeliveryError(
            error or "unknown_error", permanent=True, channel=channel, status=status
        )
    if isinstance(exc, OSError):  # timeouts, refused and dropped connections, DNS
        return DeliveryError(f"unreachable ({exc})", permanent=False, channel=channel)
    if isinstance(exc, SlackClientError):
        return DeliveryError(f"client error ({exc})", permanent=False, channel=channel)
    raise exc


class Notifier:
    """Post and update messages through `client`; every failure raises `DeliveryError`.

    Successes and permanent failures are reported to `health`."""

    def __init__(self, client: WebClient, health: DeliveryHealth | None = None) -> None:
        self.client = client
        self._health = HEALTH if health is None else health

    def post(self, channel: str, message: Message, thread_ts: str | None = None) -> str:
        """The new message's ts."""
        try:
            resp = self.client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, **message.as_kwargs()
            )
        except Exception as exc:  # classify re-raises what is not a delivery failure
            raise self._failed(exc, channel, "post to") from None
        self._health.delivered(channel)
        return str(resp["ts"])

    def update(self, channel: str, ts: str, message: Message) -> None:
        try:
            self.client.chat_update(channel=channel, ts=ts, **message.as_kwargs())
        except Exception as exc:
            raise self._failed(exc, channel, f"update {ts} in") from None
        self._health.delivered(channel)

    def ephemeral(self, channel: str, user: str, message: Message) -> None:
        try:
            self.client.chat_postEphemeral(channel=channel, user=user, **message.as_kwargs())
        except Exception as exc:
            raise self._failed(exc, channel, f"answer {user} in") from None

    def _failed(self, exc: Exception, channel: str, what: str) -> DeliveryError:
        error = classify(exc, channel)
        if error.permanent:
            error.first_seen = self._health.failed(channel, error.error, what)
        return error


@dataclass(frozen=True)
class DeliveryProblem:
    """A permanent delivery failure that still stands."""

    channel: str
    error: str
    since: datetime
    action: str

    def describe(self) -> str:
        since = self.since.strftime("%Y-%m-%d %H:%M:%S")
        return f"could not {self.action} {self.channel}: {self.error} (since {since} UTC)"


class DeliveryHealth:
    """The permanent delivery problems of this process, keyed by (channel, error).

    A problem is logged once when it first appears (not on each retry) and stands until
    a later delivery to its channel succeeds (any delivery, for a token problem)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._problems: dict[tuple[str, str], DeliveryProblem] = {}

    def failed(self, channel: str, error: str, action: str = "post to") -> bool:
        """Note a permanent failure; True if it is new (and was logged)."""
        with self._lock:
            key = (channel, error)
            if key in self._problems:
                log.debug("Slack still refuses %s %s: %s", action, channel, error)
                return False
            self._problems[key] = DeliveryProblem(channel, error, datetime.now(UTC), action)
        log.error(
            "Slack refuses to %s %s: %s; not retried until that is fixed (shown by /healthz)",
            action,
            channel,
            error,
        )
        return True

    def delivered(self, channel: str) -> None:
        with self._lock:
            if not self._problems:
                return
            cleared = [k for k in self._problems if k[0] == channel or k[1] in TOKEN_ERRORS]
            for key in cleared:
                del self._problems[key]
        for channel_, error in cleared:
            log.info("Slack delivery to %s works again (was: %s)", channel_, error)

    def problem(self, channel: str) -> DeliveryProblem | None:
        """The standing permanent problem of `channel` (or of the token), if any."""
        with self._lock:
            found = [
                p for k, p in self._problems.items() if k[0] == channel or k[1] in TOKEN_ERRORS
            ]
        return max(found, key=lambda p: p.since) if found else None

    def problems(self) -> list[DeliveryProblem]:
        """Standing problems, newest first."""
        with self._lock:
            return sorted(self._problems.values(), key=lambda p: p.since, reverse=True)

    def last_problem(self) -> DeliveryProblem | None:
        found = self.problems()
        return found[0] if found else None

    def clear(self) -> None:
        with self._lock:
            self._problems.clear()


HEALTH = DeliveryHealth()  # the process's delivery health, which /healthz reports


def post(
    client: WebClient, channel: str, message: Message, thread_ts: str | None = None
) -> str | None:
    """The new message's ts, or None if Slack refused or could not be reached."""
    try:
        return Notifier(client).post(channel, message, thread_ts)
    except DeliveryError as exc:
        if not exc.permanent:  # permanent ones are logged once by HEALTH
            log.error("could not post to %s: %s", channel, exc.error)
    return None


def update(client: WebClient, channel: str, ts: str, message: Message) -> bool:
    """Whether the message `ts` now shows `message`."""
    try:
        Notifier(client).update(channel, ts, message)
        return True
    except DeliveryError as exc:
        if not exc.permanent:
            log.error("could not update %s in %s: %s", ts, channel, exc.error)
    return False


def ephemeral(client: WebClient, channel: str, user: str, message: Message) -> bool:
    """Whether `user` was shown `message` in `channel` (chat.postEphemeral)."""
    try:
        Notifier(client).ephemeral(channel, user, message)
        return True
    except DeliveryError as exc:
        if not exc.permanent:
            log.error("could not answer %s in %s: %s", user, channel, exc.error)
    return False


def without_retries(client: WebClient, timeout: int = 10) -> WebClient:
    """A client like `client` that does not retry by itself (no sleeping through 429s),
    for callers that pace their own retries."""
    from slack_sdk import WebClient

    return WebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=min(int(client.timeout or timeout), timeout),
        ssl=client.ssl,
        proxy=client.proxy,
        headers=dict(client.headers),
        retry_handlers=[],
    )


def live_check(client: WebClient, channel: str | None) -> tuple[bool, str]:
    """Whether the bot token works and `channel` exists, asked of Slack without posting:
    `auth.test`, then `chat.getPermalink` of a message that cannot exist (Slack answers
    `message_not_found` for a channel it knows, `channel_not_found` otherwise).
    Returns (ok, one line saying what was found)."""
    try:
        auth = client.auth_test()
    except Exception as exc:
        error = classify(exc)
        kind = "refused" if error.permanent else "not reachable"
        return False, f"Slack {kind}: the bot token ({error.error})"
    who = f"bot {auth.get('user')} in workspace {auth.get('team')}"
    if not channel:
        return True, f"Slack OK: {who}"
    try:
        client.chat_getPermalink(channel=channel, message_ts="1.000000")
    except Exception as exc:
        error = classify(exc, channel)
        if error.error != "message_not_found":
            kind = "refused" if error.permanent else "not reachable"
            return False, f"Slack {kind}: channel {channel} ({error.error}); check slack.channel"
    return True, f"Slack OK: {who}, channel {channel} exists"
