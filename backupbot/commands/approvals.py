"""Who may do what to a restore request: the rules as data, checked in one place.

`check_click` is pure: given the request as it stands, the action, the acting user (the
signed payload's `user.id`, never a button value), whether that user is an approver, and
the time, it returns `None` when the click may proceed or a `Refusal` explaining why not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from backupbot.commands import humanize
from backupbot.errors import BackupbotError
from backupbot.phrases import Actor, Command, Phrase, say
from backupbot.storage.restores import PENDING, RestoreRecord

log = logging.getLogger(__name__)

APPROVE, DENY, CANCEL = "approve", "deny", "cancel"
ACTIONS = (APPROVE, DENY, CANCEL)

# (action, who may do it): "approver" means a configured approver other than the requester.
ACCESS_RULES: dict[str, str] = {
    APPROVE: "approver",
    DENY: "approver",
    CANCEL: "requester",
}


@dataclass(frozen=True)
class Refusal:
    code: str  # "decided" | "expired" | "self" | "outsider" | "duplicate" | "not_requester"
    message: Phrase | str  # plain words with typed facts; str(message) is plain text


class ApproverDirectory(Protocol):
    def members(self, group: str) -> frozenset[str]:
        """User ids in the Slack user group `group`; raises `BackupbotError` if unknown."""


@dataclass(frozen=True)
class ApprovalPolicy:
    approvers: frozenset[str]
    approver_group: str | None
    required_approvals: int
    timeout: timedelta

    @property
    def open_to_everyone(self) -> bool:
        """With no approvers configured, any member of the channel but the requester may
        approve: the two-person rule still holds."""
        return not self.approvers and self.approver_group is None

    def required_for(self, *, protected: bool, in_place: bool) -> int:
        return (
            max(self.required_approvals, 2) if protected and in_place else self.required_approvals
        )


class CachedApprovers:
    """Resolves `is_approver` from the configured ids and the user group, caching the
    group's members for `ttl` seconds (a user removed from the group loses the right
    within that time)."""

    def __init__(
        self,
        policy: ApprovalPolicy,
        directory: ApproverDirectory | None,
        ttl: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._directory = directory
        self._ttl = ttl
        self._monotonic = monotonic
        self._cached: tuple[float, frozenset[str]] | None = None
        self._lock = threading.Lock()

    def is_approver(self, user: str) -> bool:
        if self._policy.open_to_everyone or user in self._policy.approvers:
            return True
        group = self._policy.approver_group
        return group is not None and user in self._group_members(group)

    def _group_members(self, group: str) -> frozenset[str]:
        with self._lock:
            now = self._monotonic()
            if self._cached is not None and now - self._cached[0] < self._ttl:
                return self._cached[1]
        if self._directory is None:
            raise BackupbotError(
                f"The approver group {group} cannot be checked without a Slack connection."
            )
        members = self._directory.members(group)
        with self._lock:
            self._cached = (self._monotonic(), members)
        return members


def _decided(record: RestoreRecord) -> Phrase:
    who = say(" by {who}", who=Actor(record.decided_by)) if record.decided_by else ""
    when = f" at {humanize.utc(record.decided_at)}" if record.decided_at else ""
    state = "approved" if record.status not in ("denied", "cancelled", "expired") else record.status
    return (
        say("This restore request was already {state}", state=state)
        + who
        + say("{when}; nothing changed.", when=when)
    )


def check_click(
    record: RestoreRecord,
    action: str,
    user: str,
    now: datetime,
    is_approver: Callable[[str], bool],
) -> Refusal | None:
    """None if `user` may `action` the request now; else why not, in one sentence."""
    if action not in ACTIONS:
        return Refusal("unknown", f"Unknown action {action!r}.")
    if record.status != PENDING:
        return Refusal("decided", _decided(record))
    if now >= record.expires_at:
        return Refusal(
            "expired",
            say(
                "This restore request expired at {at}; nothing changed. Ask again with {cmd} "
                "if it is still needed.",
                at=humanize.utc(record.expires_at),
                cmd=Command("restore"),
            ),
        )
    if ACCESS_RULES[action] == "requester":
        if user != record.requester:
            return Refusal(
                "not_requester",
                "Only the person who asked for this restore can cancel it; approvers can Deny.",
            )
        return None
    if user == record.requester:
        verb = "approve" if action == APPROVE else "deny"
        hint = " Use Cancel to withdraw it." if action == DENY else ""
        return Refusal(
            "self",
            f"You asked for this restore, so you cannot {verb} it: a second person must "
            f"decide.{hint}",
        )
    if not is_approver(user):
        return Refusal(
            "outsider",
            "You are not one of this channel's restore approvers, so your click changed "
            "nothing. Ask an approver (slack.approvers or slack.approver_group).",
        )
    if action == APPROVE and user in record.approvers:
        left = record.required_approvals - record.approval_count
        return Refusal(
            "duplicate",
            f"You already approved this restore; it needs {left} more approval(s) from "
            "someone else.",
        )
    return None
