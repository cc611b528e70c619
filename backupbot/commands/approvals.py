"""Who may do what to a restore request: the rules as data, checked in one place.

`check_click` is pure: given the request as it stands, the action, the acting user (the
signed payload's `user.id`, never a button value), whether that user is an approver, and
the time, it returns `None` when the click may proceed or a `Refusal` explaining why not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from backupbot.commands import humanize
from backupbot.commands.access import Access
from backupbot.commands.command_spec import Role
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


@dataclass(frozen=True)
class ApprovalPolicy:
    approvers: frozenset[str]
    approver_group: str | None
    required_approvals: int
    timeout: timedelta

    def required_for(self, *, protected: bool, in_place: bool) -> int:
        return (
            max(self.required_approvals, 2) if protected and in_place else self.required_approvals
        )


class CachedApprovers:
    """Who may approve: whoever the access rules give the approver role or more
    (`access.roles`, `slack.approvers`, the members of `slack.approver_group`; group
    members and guest status cached by `access.CachedDirectory`). With none configured,
    nobody: a restore then cannot be approved, and `config check` says so."""

    def __init__(self, access: Access) -> None:
        self._access = access

    def is_approver(self, user: str) -> bool:
        return self._access.has_role(user, Role.APPROVER)


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
            "nothing. Ask an approver (access.roles, slack.approvers or "
            "slack.approver_group in the config).",
        )
    if action == APPROVE and user in record.approvers:
        left = record.required_approvals - record.approval_count
        return Refusal(
            "duplicate",
            f"You already approved this restore; it needs {left} more approval(s) from "
            "someone else.",
        )
    return None
