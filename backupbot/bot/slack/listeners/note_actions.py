"""The **Confirm** button of a staging-restore note (`/backup note app staging-restore
...`): a person other than its author confirms the restore test was done
(`commands/operation_notes.py`). The acting user is the signed payload's `user.id`; the
click counts only from the note's own message. Acknowledged at once, applied in a job."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from backupbot.bot.services import Services
from backupbot.bot.slack.blocks import note as note_blocks
from backupbot.bot.slack.flows import Flows
from backupbot.bot.slack.listeners.button_access import admitted, answer_error, answer_refusal
from backupbot.commands.click_origin import ClickOrigin
from backupbot.errors import BackupbotError


def register(app: App, services: Services, client: WebClient) -> None:
    @app.action(note_blocks.CONFIRM_ACTION)
    def on_confirm(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        services.jobs.submit(_confirm, services, client, respond, body)
        ack()


def _confirm(services: Services, client: WebClient, respond: Respond, body: dict[str, Any]) -> None:
    if not admitted(services, respond, body, "note.confirm"):
        return
    user = str(body["user"]["id"])
    note_id = str(body["actions"][0].get("value", ""))
    try:
        result = services.notes.confirm(note_id, user, ClickOrigin.of(body))
    except BackupbotError as exc:  # no such note
        answer_error(respond, exc)
        return
    Flows(services, client).note.redraw(result.note)  # the button goes, or comes back
    if result.refusal is not None:
        answer_refusal(respond, result.refusal)
