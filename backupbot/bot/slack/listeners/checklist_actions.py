"""The checklist message's controls: the item checkboxes and the Sign off button.

The acting user is the signed payload's `user.id`; a click counts only if it came from
the checklist's own message (`ClickOrigin`). A checkbox click carries the ticked
set the clicker sees; the set their message showed before the click (its
`initial_options`) tells which item they changed, so concurrent ticks by others are kept.
The listener acknowledges at once and applies the click in a job.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from backupbot.bot.services import Services
from backupbot.bot.slack.blocks import checklist as checklist_blocks
from backupbot.bot.slack.flows.checklist import ChecklistFlow
from backupbot.bot.slack.listeners.button_access import admitted, answer, answer_error
from backupbot.commands.click_origin import ClickOrigin
from backupbot.commands.command_spec import Role
from backupbot.errors import BackupbotError


def register(app: App, services: Services, flow: ChecklistFlow) -> None:
    @app.action(checklist_blocks.CHECK_ACTION)
    def on_tick(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        action = body["actions"][0]
        block_id = str(action.get("block_id", ""))
        checklist_id = checklist_blocks.checklist_id_of(block_id) or ""
        selected = checklist_blocks.selected_values(action)
        seen = checklist_blocks.seen_values(body.get("message"), block_id)
        user = str(body["user"]["id"])
        origin = ClickOrigin.of(body)
        services.jobs.submit(
            _tick, services, flow, respond, body, checklist_id, user, selected, seen, origin
        )
        ack()

    @app.action(checklist_blocks.SIGN_OFF_ACTION)
    def on_sign_off(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        checklist_id = str(body["actions"][0].get("value", ""))
        user = str(body["user"]["id"])
        origin = ClickOrigin.of(body)
        services.jobs.submit(_sign_off, services, flow, respond, body, checklist_id, user, origin)
        ack()


def _tick(
    services: Services,
    flow: ChecklistFlow,
    respond: Respond,
    body: dict[str, Any],
    checklist_id: str,
    user: str,
    selected: list[str],
    seen: list[str] | None,
    origin: ClickOrigin,
) -> None:
    if not admitted(services, respond, body, "checklist.tick"):
        return
    try:
        result = services.checklists.tick(
            checklist_id, user, selected, seen, now=services.clock.now(), origin=origin
        )
    except BackupbotError as exc:
        answer_error(respond, exc)
        return
    answer(respond, flow.after_click(result))


def _sign_off(
    services: Services,
    flow: ChecklistFlow,
    respond: Respond,
    body: dict[str, Any],
    checklist_id: str,
    user: str,
    origin: ClickOrigin,
) -> None:
    # Signing off what the bot flags as needing a look takes an admin, once the access
    # rules name one (without an access: section every operator may), and a reason: the
    # click then opens a modal that asks for it (`checklist_reason.py`).
    admins = services.access.rules.holders(Role.ADMIN)
    warned = admins and services.checklists.evaluate(services.clock.now()).needs_look
    action = "checklist.sign_off_with_warnings" if warned else "checklist.sign_off"
    if not admitted(services, respond, body, action):
        return
    try:
        result = services.checklists.sign_off(
            checklist_id, user, now=services.clock.now(), origin=origin
        )
    except BackupbotError as exc:
        answer_error(respond, exc)
        return
    trigger = str(body.get("trigger_id") or "")
    if result.needs_reason and flow.ask_reason(trigger, checklist_id, origin, result.needs_reason):
        return
    answer(respond, flow.after_click(result))
