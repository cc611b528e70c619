"""Approval stages: who must approve a restore, in which order, and how far it has got.

A request's policy is up to three stages, taken in order (Opal's model): each is
`need` approvals from its `approvers` (Slack user ids and user-group ids; none named:
anyone with the approver role), or all of them (`need: all`, resolved to people when the
request is made). The requester never counts, and a person counts once, in one stage.

The stages are stored with the request (`restores.policy`), so a config change never
alters a request already waiting; a request stored before stages existed is one stage of
the approver role needing `required_approvals`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

ALL = "all"
DEFAULT_STAGE = "Approvers"


@dataclass(frozen=True)
class Stage:
    """One stage as configured, or as stored with a request (then `members` is filled for
    an all-of stage: the people who must each approve)."""

    name: str
    need: int | str  # a count, or ALL
    approvers: tuple[str, ...] = ()  # user ids / group ids; () = the approver role
    members: tuple[str, ...] | None = None  # ALL stages once resolved

    @property
    def needed(self) -> int:
        """How many approvals this stage needs (an unresolved all-of stage: unknown, 1)."""
        if self.need == ALL:
            return len(self.members) if self.members is not None else 1
        return int(self.need)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "need": self.need}
        if self.approvers:
            out["approvers"] = list(self.approvers)
        if self.members is not None:
            out["members"] = list(self.members)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stage:
        members = data.get("members")
        need = data.get("need", 1)
        return cls(
            name=str(data.get("name") or DEFAULT_STAGE),
            need=ALL if need == ALL else int(need),
            approvers=tuple(str(a) for a in data.get("approvers") or ()),
            members=None if members is None else tuple(str(m) for m in members),
        )


def stages_of(policy: Sequence[dict[str, Any]], required_approvals: int) -> tuple[Stage, ...]:
    """A request's stages as stored; none stored: one stage of the approver role."""
    if policy:
        return tuple(Stage.from_json(s) for s in policy)
    return (Stage(DEFAULT_STAGE, max(required_approvals, 1)),)


def total_needed(stages: Iterable[Stage]) -> int:
    return sum(s.needed for s in stages)


@dataclass(frozen=True)
class StageProgress:
    """A stage of a request as it stands: who approved in it and whether it is the one
    being waited for now."""

    stage: Stage
    approved_by: tuple[str, ...]
    current: bool

    @property
    def done(self) -> bool:
        return len(self.approved_by) >= self.stage.needed

    @property
    def waiting_on(self) -> tuple[str, ...]:
        """Who can still approve in this stage, as configured (ids of people and groups);
        for an all-of stage, the members who have not approved yet."""
        if self.stage.members is not None:
            return tuple(m for m in self.stage.members if m not in self.approved_by)
        return self.stage.approvers


def progress(stages: Sequence[Stage], approvals: Sequence[dict[str, Any]]) -> list[StageProgress]:
    """Each stage with its approvals (an approval without a stage is the first's) and
    which stage is current: the first not yet done."""
    by_stage: dict[int, list[str]] = {}
    for a in approvals:
        by_stage.setdefault(int(a.get("stage", 0)), []).append(str(a["user"]))
    out: list[StageProgress] = []
    found_current = False
    for i, stage in enumerate(stages):
        given = tuple(by_stage.get(i, ()))
        current = not found_current and len(given) < stage.needed
        found_current = found_current or current
        out.append(StageProgress(stage, given, current))
    return out


def current_index(stages: Sequence[Stage], approvals: Sequence[dict[str, Any]]) -> int | None:
    """The index of the stage being waited for; None once every stage is done."""
    for i, p in enumerate(progress(stages, approvals)):
        if p.current:
            return i
    return None
