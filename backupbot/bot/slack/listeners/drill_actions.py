"""The drill message's **Mark reviewed** button: a person other than whoever started the
drill confirms they looked at its result (`commands/drill_review.py`). The acting user
is the signed payload's `user.id`; the click counts only from the drill's own message.
Acknowledged at once, applied in a job."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from backupbot.bot.services import Services
from backupbot.bot.slack import delivery
from backupbot.bot.slack.blocks import drill as drill_blocks
from backupbot.bot.slack.listeners.button_access import admitted, answer_error, answer_refusal
from backupbot.commands.click_origin import ClickOrigin
from backupbot.errors import BackupbotError


def register(app: App, services: Services, client: WebClient) -> None:
    @app.action(drill_blocks.REVIEW_ACTION)
    def on_review(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        services.jobs.submit(_review, services, client, respond, body)
        ack()


def _review(services: Services, client: WebClient, respond: Respond, body: dict[str, Any]) -> None:
    if not admitted(services, respond, body, "drill.review"):
        return
    user = str(body["user"]["id"])
    drill_id = str(body["actions"][0].get("value", ""))
    try:
        result = services.drills.review(drill_id, user, ClickOrigin.of(body))
    except BackupbotError as exc:  # no such drill
        answer_error(respond, exc)
        return
    record = result.record
    if record.channel and record.message_ts:  # redraw: the button goes, or comes back
        message = drill_blocks.drill_message(record, services.clock.now())
        delivery.update(client, record.channel, record.message_ts, message)
    if result.refusal is not None:
        answer_refusal(respond, result.refusal)
