"""The Reviewed button on a break-glass restore's notice.

The acting user is the signed payload's `user.id`; the button's value only names the
restore, and the click counts only if it came from that restore's notice (`ClickOrigin`).
The decision is `BreakGlassReviews.review`; the listener acknowledges the request at once
and shows the effect (notice update and thread note, or an ephemeral refusal) in a
background job.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from backupbot.bot.services import Services
from backupbot.bot.slack.blocks import review as review_blocks
from backupbot.bot.slack.flows.restore import RestoreFlow
from backupbot.bot.slack.listeners.button_access import admitted, answer_error, answer_refusal
from backupbot.commands.click_origin import ClickOrigin
from backupbot.errors import BackupbotError


def register(app: App, services: Services, flow: RestoreFlow) -> None:
    def on_review(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        services.jobs.submit(_review, services, flow, respond, body)
        ack()

    app.action(review_blocks.REVIEW_ACTION)(on_review)


def _review(services: Services, flow: RestoreFlow, respond: Respond, body: dict[str, Any]) -> None:
    if not admitted(services, respond, body, "restore.review"):
        return
    user = str(body["user"]["id"])
    restore_id = str(body["actions"][0].get("value", ""))
    try:
        result = flow.review(restore_id, user, ClickOrigin.of(body))
    except BackupbotError as exc:  # e.g. a restore id that does not exist
        answer_error(respond, exc)
        return
    if result.refusal is not None:
        answer_refusal(respond, result.refusal, ":no_entry_sign:")
