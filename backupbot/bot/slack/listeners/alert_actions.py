"""The alert message's Acknowledge button.

The acting user is the signed payload's `user.id`; the button's value only names the
alert, and the click counts only if it came from the alert's message (`ClickOrigin`).
The decision is `AlertService.acknowledge`; the listener acknowledges the request
at once and shows the effect (message update, thread note, or an ephemeral refusal) in a
background job.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from backupbot.bot.services import Services
from backupbot.bot.slack.blocks import alert as alert_blocks
from backupbot.bot.slack.flows.alert import AlertFlow
from backupbot.bot.slack.listeners.button_access import admitted, answer, answer_error
from backupbot.commands.click_origin import ClickOrigin
from backupbot.errors import BackupbotError


def register(app: App, services: Services, flow: AlertFlow) -> None:
    def on_ack(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        services.jobs.submit(_acknowledge, services, flow, respond, body)
        ack()

    app.action(alert_blocks.ACK_ACTION)(on_ack)


def _acknowledge(
    services: Services, flow: AlertFlow, respond: Respond, body: dict[str, Any]
) -> None:
    if not admitted(services, respond, body, "alert.acknowledge"):
        return
    user = str(body["user"]["id"])
    alert_id = str(body["actions"][0].get("value", ""))
    try:
        result = flow.acknowledge(alert_id, user, ClickOrigin.of(body))
    except BackupbotError as exc:  # e.g. an alert id that does not exist
        answer_error(respond, exc)
        return
    if result.refusal is not None:
        answer(respond, alert_blocks.refused(result.refusal))
