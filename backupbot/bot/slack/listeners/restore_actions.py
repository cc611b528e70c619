"""The restore request's buttons: Approve, Deny, Cancel.

The acting user is the signed payload's `user.id`; the button's value only names the
request, and the click counts only if it came from that request's message (the channel
and message ts of the payload, `ClickOrigin`). The decision is `RestoreService.click`;
the listener acknowledges at once and shows the effect (message update, ephemeral
refusal, the restore itself) in a job.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from backupbot.bot.services import Services
from backupbot.bot.slack.blocks import restore as restore_blocks
from backupbot.bot.slack.flows.restore import RestoreFlow
from backupbot.bot.slack.listeners.button_access import admitted, answer, answer_error
from backupbot.commands.approvals import APPROVE, CANCEL, DENY
from backupbot.commands.click_origin import ClickOrigin
from backupbot.errors import BackupbotError

_ACTIONS = {
    restore_blocks.APPROVE_ACTION: APPROVE,
    restore_blocks.DENY_ACTION: DENY,
    restore_blocks.CANCEL_ACTION: CANCEL,
}


def register(app: App, services: Services, flow: RestoreFlow) -> None:
    for action_id, action in _ACTIONS.items():
        app.action(action_id)(_handler(services, flow, action))


def _handler(services: Services, flow: RestoreFlow, action: str) -> Any:
    def on_click(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        origin = ClickOrigin.of(body)
        services.jobs.submit(_click, services, flow, respond, body, action, origin)
        ack()

    on_click.__name__ = f"on_restore_{action}"
    return on_click


def _click(
    services: Services,
    flow: RestoreFlow,
    respond: Respond,
    body: dict[str, Any],
    action: str,
    origin: ClickOrigin,
) -> None:
    if not admitted(services, respond, body, "restore.click"):
        return
    user = str(body["user"]["id"])
    restore_id = str(body["actions"][0].get("value", ""))
    try:
        result = services.restores.click(restore_id, action, user, origin)
    except BackupbotError as exc:  # e.g. a request id that does not exist
        answer_error(respond, exc)
        return
    answer(respond, flow.after_click(result))
