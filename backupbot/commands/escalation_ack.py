"""Who may acknowledge an alert.

Acknowledging claims the alert and stops its pings, so it is for the people the alert
has called: anyone mentioned in an escalation level that has already fired for it
(directly, or as a member of a user group named there), and admins. While the fired
levels mention nobody (the default config mentions nobody at all), operators may. Guests
never do (they are viewers at most). Group members come from the cached directory
(`commands/access.py`), so someone removed from a group loses the right within its TTL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backupbot.commands import humanize
from backupbot.commands.access import Access, Directory
from backupbot.commands.command_spec import Role
from backupbot.errors import BackupbotError
from backupbot.phrases import Actor, Name, Phrase, join, say
from backupbot.settings import EscalationLevel
from backupbot.storage.alerts import OPEN, AlertRecord

DENIED = "access.ack"  # the refusal's code in its `access.denied` record


@dataclass(frozen=True)
class AckEligibility:
    """Who may acknowledge an alert now: the users and user groups of its fired levels,
    or (`operators`) anyone with the operator role when those levels mention nobody."""

    users: tuple[str, ...]
    groups: tuple[str, ...]
    operators: bool

    def describe(self, admins: Sequence[str]) -> Phrase:
        parts: list[Phrase] = []
        if self.operators:
            parts.append(say("an operator"))
        parts += [say("{u}", u=Actor(u)) for u in self.users]
        parts += [say("members of {g}", g=Name("@" + g)) for g in self.groups]
        admin_users = [a for a in admins if a[:1] != "S"]
        if admin_users:
            parts.append(
                say("an admin ({who})", who=join([say("{u}", u=Actor(a)) for a in admin_users]))
            )
        else:
            parts.append(say("an admin"))
        return join(parts, " or ")


class AckRule:
    """Decides whether a user may acknowledge an alert (see the module docstring)."""

    def __init__(
        self,
        levels: Sequence[EscalationLevel],
        access: Access | None,
        directory: Directory | None,
    ) -> None:
        self._levels = list(levels)
        self._access = access
        self._directory = directory

    def eligible(self, alert: AlertRecord) -> AckEligibility:
        fired = self._levels[: max(alert.levels_fired, 0)]
        users = tuple(dict.fromkeys(m for lvl in fired for m in lvl.mention if m[:1] in "UW"))
        groups = tuple(dict.fromkeys(m for lvl in fired for m in lvl.mention if m[:1] == "S"))
        return AckEligibility(users, groups, operators=not users and not groups)

    def refusal(self, alert: AlertRecord, user: str) -> Phrase | None:
        """None if `user` may acknowledge `alert` now, else the answer naming who may.
        Raises `BackupbotError` when Slack cannot say who is in a group or a guest."""
        if self._access is None:
            return None
        who = self.eligible(alert)
        if self._is_guest(user):
            return self._refused(who, say("Guests cannot acknowledge alerts."))
        if self._access.has_role(user, Role.ADMIN):
            return None
        if who.operators:
            if self._access.has_role(user, Role.OPERATOR):
                return None
        elif user in who.users or any(self._member(user, g) for g in who.groups):
            return None
        return self._refused(who, say("You are not on this alert's escalation path so far."))

    def denial(self, alert: AlertRecord, user: str) -> tuple[Phrase, dict[str, Any]] | None:
        """None if `user` may acknowledge `alert`; else the answer and the facts of its
        `access.denied` record. A failed Slack lookup refuses too (code `access.lookup`)."""
        code = DENIED
        try:
            refusal = self.refusal(alert, user)
        except BackupbotError as exc:
            code, refusal = "access.lookup", exc.phrase
        if refusal is None:
            return None
        who = self.eligible(alert)
        return refusal, {
            "code": code,
            "clicked": "acknowledge",
            "reason": str(refusal),
            "may_acknowledge": [*who.users, *who.groups, *(["operators"] if who.operators else [])],
            "levels_fired": alert.levels_fired,
        }

    def _refused(self, who: AckEligibility, why: Phrase) -> Phrase:
        admins = self._access.rules.holders(Role.ADMIN) if self._access else []
        return why + say(
            " This alert can be acknowledged now by {who}; later levels add their people "
            "when they fire. It keeps pinging.",
            who=who.describe(admins),
        )

    def _is_guest(self, user: str) -> bool:
        return self._directory is not None and user[:1] in "UW" and self._directory.is_guest(user)

    def _member(self, user: str, group: str) -> bool:
        if self._directory is None:
            raise BackupbotError(
                f"The user group {group} cannot be checked without a Slack connection."
            )
        return user in self._directory.members(group)


def why_not_again(current: AlertRecord, user: str) -> Phrase | str:
    """Why a click on an alert that is no longer open and unacknowledged changed nothing."""
    if current.status != OPEN:
        return (
            f"This alert was already resolved at {humanize.utc(current.resolved_at)}"
            f" ({current.resolution or 'its condition cleared'}); there is nothing to "
            "acknowledge."
        )
    if current.acknowledged_by == user:
        return (
            f"You already acknowledged this alert at "
            f"{humanize.utc(current.acknowledged_at)}; its pings are paused."
        )
    return say(
        "{who} already acknowledged this alert at {at}; the pings stopped then. "
        "Coordinate with them in the alert's thread.",
        who=Actor(current.acknowledged_by or "?"),
        at=humanize.utc(current.acknowledged_at),
    )
