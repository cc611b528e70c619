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


def admitted(
    services: Services, respond: Callable[..., Any], body: dict[str, Any], action: str
) -> bool:
    """Whether the clicker of `body` may take `action`; if not, answered and recorded."""
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
        respond(response_type="ephemeral", replace_original=False, text=kit.render(exc.phrase))
        return False
    return True
