"""The access rules for buttons: a click needs the role `BUTTON_ROLES` names for its
action (`commands/access.py`); a refused click gets an answer only the clicker sees and an
`access.denied` record, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backupbot.bot.services import Services
from backupbot.bot.slack import kit
from backupbot.commands.access import BUTTON_ROLES
from backupbot.commands.refusals import record_unrecorded
from backupbot.errors import BackupbotError
from backupbot.phrases import Phrase

Respond = Callable[..., Any]


def admitted(services: Services, respond: Respond, body: dict[str, Any], action: str) -> bool:
    """Whether the clicker of `body` may take `action`; if not, answered and recorded."""
    refused = refusal(services, body, action)
    if refused is not None:
        answer_error(respond, refused)
    return refused is None


def refusal(services: Services, body: dict[str, Any], action: str) -> BackupbotError | None:
    """None if the clicker of `body` may take `action`; else why not, recorded."""
    user = str(body["user"]["id"])
    team = (body.get("team") or {}).get("id") or body["user"].get("team_id")
    enterprise = (body.get("enterprise") or {}).get("id")
    try:
        caller = services.access.caller(user, team=team, enterprise=enterprise)
        services.access.require(caller, BUTTON_ROLES[action])
    except BackupbotError as exc:
        target = str((body.get("actions") or [{}])[0].get("value", ""))[:80]
        now = services.clock.now()
        record_unrecorded(
            services.incidents, exc, at=now, actor=user, command=f"button {action} {target}"
        )
        return exc
    return None


def answer(respond: Respond, message: kit.Message | None) -> None:
    """`message` (if any) as an answer only the clicker sees; the clicked message stays."""
    if message is not None:
        respond(response_type="ephemeral", replace_original=False, **message.as_kwargs())


def answer_error(respond: Respond, exc: BackupbotError) -> None:
    """What went wrong with a click (no such drill, note, restore…), to the clicker."""
    respond(response_type="ephemeral", replace_original=False, text=kit.render(exc.phrase))


def answer_refusal(respond: Respond, refusal: Phrase, emoji: str = ":no_entry:") -> None:
    """Why a click changed nothing (its service's refusal), to the clicker."""
    answer(respond, kit.notice(f"{emoji} {kit.render(refusal)}"))
