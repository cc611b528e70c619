"""Who may do what to a restore request: the rules as data, checked in one place.

`check_click` is pure: given the request as it stands, the action, the acting user (the
signed payload's `user.id`, never a button value), whether that user is an approver, and
the time, it returns `None` when the click may proceed or a `Refusal` explaining why not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from backupbot.commands import humanize
from backupbot.commands.access import Access
from backupbot.commands.approval_stages import ALL, Stage, current_index, stages_of, total_needed
from backupbot.commands.command_spec import Role
from backupbot.errors import BackupbotError
from backupbot.phrases import Actor, Command, Name, Phrase, join, say
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


class Unapprovable(BackupbotError):
    """A restore request that nobody could approve under its stages is not made."""

    code = "restore.unapprovable"


@dataclass(frozen=True)
class ApprovalPolicy:
    """The configured stages: `stages` for every restore, `protected_in_place` for an
    in-place restore over a database marked protected; how long a request waits."""

    stages: tuple[Stage, ...]
    protected_in_place: tuple[Stage, ...]
    timeout: timedelta

    def stages_for(self, *, protected: bool, in_place: bool) -> tuple[Stage, ...]:
        return self.protected_in_place if protected and in_place else self.stages


def at_least_two(stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
    """`stages` needing two approvals in all: the last stage's count raised when they
    would need only one (an all-of stage is left as it is: its size is known later)."""
    if any(s.need == ALL for s in stages) or total_needed(stages) >= 2:
        return stages
    *head, last = stages
    return (*head, replace(last, need=2 - total_needed(head)))


class CachedApprovers:
    """Who may approve: whoever the access rules give the approver role or more
    (`access.roles`, `slack.approvers`, the members of `slack.approver_group`; group
    members and guest status cached by `access.CachedDirectory`), or, for a stage that
    names its approvers, those people and group members. Guests never approve. With none
    configured, nobody: a restore then cannot be approved, and `config check` says so."""

    def __init__(self, access: Access) -> None:
        self._access = access

    def is_approver(self, user: str) -> bool:
        return self._access.has_role(user, Role.APPROVER)

    def eligible(self, stage: Stage, user: str) -> bool:
        """Whether `user` may approve in `stage` (the requester rule is checked apart)."""
        if stage.members is not None:
            return user in stage.members and self._access.is_among(user, stage.members)
        if stage.approvers:
            return self._access.is_among(user, stage.approvers)
        return self.is_approver(user)

    def resolve(self, stages: tuple[Stage, ...], requester: str) -> tuple[Stage, ...]:
        """The stages to store with a new request: each all-of stage with its people
        (group members now, guests and the requester left out). Raises `Unapprovable`
        when a stage could never be completed."""
        out: list[Stage] = []
        for stage in stages:
            if not stage.approvers:  # the approver role, as granted now
                holders = tuple(self._access.rules.holders(Role.APPROVER))
                stage = replace(stage, approvers=holders)
            if stage.need == ALL:
                people = self._access.people(stage.approvers) - {requester}
                stage = replace(stage, members=tuple(sorted(people)))
            out.append(stage)
            short = self._shortfall(stage, requester)
            if short is not None:
                raise Unapprovable(short)
        return tuple(out)

    def _shortfall(self, stage: Stage, requester: str) -> Phrase | None:
        if stage.members is not None:
            count: int | None = len(stage.members)
        else:
            named = stage.approvers
            try:
                count = len(self._access.people(named) - {requester})
            except BackupbotError:  # Slack cannot say now: the clicks will be checked
                count = None
        if count is None or count >= max(stage.needed, 1):
            return None
        if stage.members is not None or stage.approvers:
            who = "people" if count != 1 else "person"
            return say(
                "Nobody could approve this restore: its {stage} stage needs {need} "
                "approval(s) and names only {n} {who} besides you. Ask an admin to name "
                "more approvers in the config.",
                stage=Name(stage.name),
                need=max(stage.needed, 1),
                n=count,
                who=who,
            )
        return say(
            "Nobody could approve this restore: it needs {need} approval(s) from the "
            "approver role, and {n} person(s) besides you hold it. Ask an admin to set "
            "slack.approvers, slack.approver_group or access.roles.",
            need=stage.needed,
            n=count,
        )


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
    eligible: Callable[[Stage, str], bool],
) -> Refusal | None:
    """None if `user` may `action` the request now; else why not, in one sentence.
    `eligible(stage, user)` says whether the user may approve in that stage."""
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
    return _stage_refusal(record, action, user, eligible)


def _stage_refusal(
    record: RestoreRecord, action: str, user: str, eligible: Callable[[Stage, str], bool]
) -> Refusal | None:
    """An approver's click against the request's stages: none of them names the user,
    they already counted, or the stage being waited for is not theirs."""
    stages = stages_of(record.policy, record.required_approvals)
    mine = [i for i, stage in enumerate(stages) if eligible(stage, user)]
    if not mine:
        return Refusal("outsider", _outsider(stages))
    if action == DENY:
        return None
    if user in record.approvers:
        left = record.required_approvals - record.approval_count
        return Refusal(
            "duplicate",
            f"You already approved this restore, and a person counts once; it needs {left} "
            "more approval(s) from someone else.",
        )
    current = current_index(stages, record.approvals)
    if current is not None and current not in mine:
        later = [i for i in mine if i > current]
        if later:
            text = say(
                "This restore is waiting for its {now} stage; you approve in its {yours} "
                "stage, once that one is complete. Nothing changed.",
                now=Name(stages[current].name),
                yours=Name(stages[later[0]].name),
            )
        else:
            text = say(
                "Its {done} stage is already complete and it now waits for its {now} "
                "stage, which you are not among. Nothing changed.",
                done=Name(stages[mine[-1]].name),
                now=Name(stages[current].name),
            )
        return Refusal("stage", text)
    return None


def _outsider(stages: tuple[Stage, ...]) -> Phrase:
    named = [a for s in stages for a in s.approvers]
    if not named:
        return say(
            "You are not one of this channel's restore approvers, so your click changed "
            "nothing. Ask an approver (access.roles, slack.approvers or "
            "slack.approver_group in the config)."
        )
    return say(
        "You are not one of this channel's restore approvers for this request, so your "
        "click changed nothing. It can be approved by {who}.",
        who=join([say("{a}", a=Actor(a)) for a in dict.fromkeys(named)]),
    )
