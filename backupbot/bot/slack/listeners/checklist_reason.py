"""The sign-off reason modal's submission (a checklist that shows warnings).

A reason too short or too long is answered in the modal itself (`response_action:
errors`, within Slack's 3 seconds). Otherwise the modal closes and the sign-off is
applied in a job, under the same access rules as the click, against the message the
click came from; its outcome shows in the checklist message, a refusal as an ephemeral
answer in the channel (a modal has no response_url).
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from backupbot.bot.services import Services
from backupbot.bot.slack import kit
from backupbot.bot.slack.blocks import checklist_reason
from backupbot.bot.slack.flows.checklist import ChecklistFlow
from backupbot.bot.slack.listeners.button_access import admitted
from backupbot.commands.click_origin import ClickOrigin
from backupbot.commands.command_spec import Role
from backupbot.errors import BackupbotError


def register(app: App, services: Services, flow: ChecklistFlow) -> None:
    @app.view(checklist_reason.CALLBACK_ID)
    def on_reason(ack: Ack, body: dict[str, Any]) -> None:
        meta, reason = checklist_reason.submitted(body.get("view") or {})
        error = checklist_reason.reason_error(reason)
        if error is not None:
            ack(response_action="errors", errors={checklist_reason.REASON_BLOCK: error})
            return
        services.jobs.submit(_sign_off, services, flow, body, meta, reason)
        ack()


def _sign_off(
    services: Services,
    flow: ChecklistFlow,
    body: dict[str, Any],
    meta: dict[str, str],
    reason: str,
) -> None:
    user = str(body["user"]["id"])
    channel = meta["channel"]

    def respond(**answer: Any) -> None:  # `admitted`'s answer, as an ephemeral message
        flow.whisper(channel, user, kit.notice(str(answer.get("text", ""))))

    admins = services.access.rules.holders(Role.ADMIN)
    warned = admins and services.checklists.evaluate(services.clock.now()).needs_look
    action = "checklist.sign_off_with_warnings" if warned else "checklist.sign_off"
    if not admitted(services, respond, body, action):
        return
    origin = ClickOrigin(channel, meta["ts"])
    try:
        result = services.checklists.sign_off(
            meta["checklist"], user, now=services.clock.now(), origin=origin, reason=reason
        )
    except BackupbotError as exc:
        respond(text=kit.render(exc.phrase))
        return
    answer = flow.after_click(result)
    if answer is not None:
        flow.whisper(channel, user, answer)
