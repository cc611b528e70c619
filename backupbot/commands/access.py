"""Who may do what: roles granted to people and user groups, checked in one place.

Four roles, each including the ones below it: `viewer` (status, log, the retention dry
run), `operator` (backups, drills, restore requests, ticking the checklist, reviewing a
drill, noting an operation done elsewhere and confirming someone else's staging-restore
note; acknowledging an alert while its fired escalation levels name nobody, else
`escalation_ack.py` decides), `approver` (approving and denying restores, reviewing a
break-glass restore) and `admin` (retention --apply, break-glass, signing off a checklist
that shows a warning). Each command names its role in `registry.py`, each button in
`BUTTON_ROLES`.

`AccessRules.check` is pure: given who is asking, from where, and the role needed, it
returns `None` or a `Refusal` that names the role and who has it. What Slack knows about
the person (guest or not, which user groups they are in) is looked up by the caller
through a `Directory` and cached by `CachedDirectory`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from backupbot.commands.command_spec import Role
from backupbot.errors import BackupbotError
from backupbot.phrases import Actor, Channel, Name, Phrase, join, say

T = TypeVar("T")

# Buttons, by the action they take: the role a click needs.
BUTTON_ROLES: dict[str, Role] = {
    # Approve and Deny need the approver role, Cancel the requester: approvals.py decides
    # (and records `restore.click_refused`); here only the workspace is checked.
    "restore.click": Role.VIEWER,
    "checklist.tick": Role.OPERATOR,
    "drill.review": Role.OPERATOR,
    # Confirm (a staging restore noted with /backup note): an operator other than its
    # author; commands/operation_notes.py decides (and records `note.confirm_refused`).
    "note.confirm": Role.OPERATOR,
    "checklist.sign_off": Role.OPERATOR,
    "checklist.sign_off_with_warnings": Role.ADMIN,
    # Acknowledge: the people of the alert's fired escalation levels, admins, or (when
    # those levels mention nobody) operators; commands/escalation_ack.py decides.
    "alert.acknowledge": Role.VIEWER,
    # Reviewed (a break-glass restore): an approver other than the runner;
    # commands/escalation_review.py decides (and records `restore.review_refused`).
    "restore.review": Role.VIEWER,
    # The App Home's buttons: the roles of `/backup now` and `/backup restore`.
    "home.backup_now": Role.OPERATOR,
    "home.restore": Role.OPERATOR,
}


def role_name(role: Role) -> str:
    return role.name.lower()


class AccessDenied(BackupbotError):
    """The person, workspace or channel may not do this; `code` says which rule."""

    code = "access.role"

    def __init__(self, refusal: Refusal) -> None:
        self.code = refusal.code
        super().__init__(refusal.message)


@dataclass(frozen=True)
class Refusal:
    code: str  # "access.workspace" | "access.channel" | "access.role"
    message: Phrase


@dataclass(frozen=True)
class Caller:
    """Who is asking and from where, as the signed Slack payload and the directory say."""

    user: str
    team: str | None = None
    enterprise: str | None = None
    channel: str | None = None  # None: a button on one of the bot's own messages
    guest: bool = False
    groups: frozenset[str] = frozenset()  # the granted user groups the user is in


@dataclass(frozen=True)
class AccessRules:
    grants: Mapping[Role, frozenset[str]]  # user ids (U…/W…) and user group ids (S…)
    default: Role | None  # for anyone in an accepted channel who is granted nothing
    channels: frozenset[str]  # where commands are accepted
    team: str | None = None  # the workspace commands must come from, when set
    enterprise: str | None = None
    group_names: Mapping[str, str] = field(default_factory=dict)  # S… id -> handle

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(g for members in self.grants.values() for g in members if _is_group(g))

    def role_of(self, caller: Caller) -> Role | None:
        """The highest role granted to the caller or a group they are in, else the
        default; a guest is a viewer at most."""
        held = [
            role
            for role, members in self.grants.items()
            if caller.user in members or caller.groups & members
        ]
        role = max(held) if held else self.default
        if caller.guest and role is not None:
            return min(role, Role.VIEWER)
        return role

    def holders(self, needed: Role) -> list[str]:
        """Who is granted `needed` or more, users before groups, as configured."""
        found = [m for role, members in self.grants.items() if role >= needed for m in members]
        return sorted(set(found), key=lambda m: (_is_group(m), m))

    def check(self, caller: Caller, needed: Role) -> Refusal | None:
        if self.team and caller.team and caller.team != self.team:
            return Refusal(
                "access.workspace", say("backupbot does not take requests from this workspace.")
            )
        if self.enterprise and caller.enterprise != self.enterprise:
            return Refusal(
                "access.workspace", say("backupbot does not take requests from this organisation.")
            )
        if caller.channel is not None and caller.channel not in self.channels:
            return Refusal(
                "access.channel",
                say(
                    "Use {command} in {where}; it is not taken from here.",
                    command=Name("/backup"),
                    where=self._channel_list(),
                ),
            )
        have = self.role_of(caller)
        if have is not None and have >= needed:
            return None
        return Refusal("access.role", self._role_refusal(caller, needed, have))

    def _channel_list(self) -> Phrase:
        return join([say("{c}", c=Channel(c)) for c in sorted(self.channels)], " or ")

    def _role_refusal(self, caller: Caller, needed: Role, have: Role | None) -> Phrase:
        yours = "no role here" if have is None else f"the {role_name(have)} role"
        guest = " (guests are viewers at most)" if caller.guest else ""
        holders = self.holders(needed)
        who = (
            say(" {who} can.", who=join([self._holder(h) for h in holders]))
            if holders
            else say(" Nobody is granted it yet: an admin adds it under access: in the config.")
        )
        return (
            say(
                "This needs the {needed} role; you have {yours}{guest}.",
                needed=role_name(needed),
                yours=yours,
                guest=guest,
            )
            + who
        )

    def _holder(self, member: str) -> Phrase:
        if _is_group(member):
            return say("members of {g}", g=Name("@" + self.group_names.get(member, member)))
        return say("{u}", u=Actor(member))


def _is_group(member: str) -> bool:
    return member.startswith("S")


class Directory(Protocol):
    def members(self, group: str) -> frozenset[str]:
        """User ids in the Slack user group `group`; raises `BackupbotError`."""

    def is_guest(self, user: str) -> bool:
        """Whether `user` is a multi- or single-channel guest; raises `BackupbotError`."""


class CachedDirectory:
    """A `Directory` whose answers are kept for `ttl` seconds: a user removed from a
    group, or made a guest, loses the rights within that time."""

    def __init__(
        self,
        directory: Directory,
        ttl: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory
        self._ttl = ttl
        self._monotonic = monotonic
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._guests: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def members(self, group: str) -> frozenset[str]:
        return self._cached(self._members, group, self._directory.members)

    def is_guest(self, user: str) -> bool:
        return self._cached(self._guests, user, self._directory.is_guest)

    def _cached(self, cache: dict[str, tuple[float, T]], key: str, fetch: Callable[[str], T]) -> T:
        with self._lock:
            hit = cache.get(key)
            if hit is not None and self._monotonic() - hit[0] < self._ttl:
                return hit[1]
        value = fetch(key)
        with self._lock:
            cache[key] = (self._monotonic(), value)
        return value


class Access:
    """The rules and the directory together: `caller(...)` fills in what Slack knows
    about a person, `require(caller, role)` raises `AccessDenied`."""

    def __init__(self, rules: AccessRules, directory: Directory | None) -> None:
        self.rules = rules
        self._directory = directory

    @property
    def directory(self) -> Directory | None:
        """Where Slack's answers about people come from (None: no Slack client)."""
        return self._directory

    def caller(
        self,
        user: str,
        *,
        team: str | None = None,
        enterprise: str | None = None,
        channel: str | None = None,
    ) -> Caller:
        guest, groups = False, frozenset[str]()
        if self._directory is not None and _is_person(user):
            guest = self._directory.is_guest(user)
            groups = frozenset(g for g in self.rules.groups if user in self._directory.members(g))
        return Caller(user, team, enterprise, channel, guest, groups)

    def require(self, caller: Caller, needed: Role) -> None:
        refusal = self.rules.check(caller, needed)
        if refusal is not None:
            raise AccessDenied(refusal)

    def has_role(self, user: str, needed: Role) -> bool:
        """Whether `user` holds `needed` wherever they click (channel not considered).
        The directory is asked only as far as needed: group members when no direct grant
        suffices, guest status once a grant does."""
        direct = self.rules.role_of(Caller(user))
        if direct is None or direct < needed:
            groups = self._groups_of(user, needed)
            held = self.rules.role_of(Caller(user, groups=groups))
            if held is None or held < needed:
                return False
        if needed > Role.VIEWER and self._directory is not None and _is_person(user):
            return not self._directory.is_guest(user)
        return True

    def people(self, members: Iterable[str]) -> frozenset[str]:
        """The people `members` names: user ids as they are, groups expanded through the
        directory; guests left out. Raises `BackupbotError` when groups cannot be asked."""
        out: set[str] = set()
        for m in members:
            out |= self._members_of(m) if _is_group(m) else {m}
        return frozenset(u for u in out if not self._guest(u))

    def is_among(self, user: str, members: Iterable[str]) -> bool:
        """Whether `user` is one of `members` or in one of its groups, and not a guest."""
        named = list(members)
        found = user in named or any(_is_group(m) and user in self._members_of(m) for m in named)
        return found and not self._guest(user)

    def _members_of(self, group: str) -> frozenset[str]:
        if self._directory is None:
            raise BackupbotError(
                f"The user group {group} cannot be checked without a Slack connection."
            )
        return self._directory.members(group)

    def _guest(self, user: str) -> bool:
        return self._directory is not None and _is_person(user) and self._directory.is_guest(user)

    def _groups_of(self, user: str, needed: Role) -> frozenset[str]:
        granting = [
            g
            for role, members in self.rules.grants.items()
            if role >= needed
            for g in members
            if _is_group(g)
        ]
        if granting and self._directory is None:
            raise BackupbotError(
                f"The user group {granting[0]} cannot be checked without a Slack connection."
            )
        directory = self._directory
        return frozenset(g for g in granting if directory and user in directory.members(g))


def _is_person(user: str) -> bool:
    return user[:1] in ("U", "W")


def grants_from(
    configured: Mapping[str, Iterable[str]], approvers: Iterable[str], approver_group: str | None
) -> dict[Role, frozenset[str]]:
    """The grant table from the config's `access.roles` and the approvers `slack:` names."""
    grants = {Role[name.upper()]: frozenset(members) for name, members in configured.items()}
    extra = frozenset(approvers) | ({approver_group} if approver_group else frozenset())
    grants[Role.APPROVER] = grants.get(Role.APPROVER, frozenset()) | extra
    return grants
