"""The App Home tab: `app_home_opened` publishes the viewer's Home view (`views.publish`),
and its buttons act. A viewer sees every database; the buttons they may not use are
hidden, and a click on one anyway (an old view, a role since taken away) is refused,
recorded (`access.denied`) and answered in the republished view, as every answer to a
Home click is: a Home tab has no channel to answer in.

"Back up now" takes the path of `/backup now` (the clicker is the actor); "Request a
restore" answers with the exact `/backup restore` command to type in the channel; "Open
the checklist" is a link to the checklist's message. A failed `views.publish` is logged,
never raised."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from backupbot.bot.services import Services
from backupbot.bot.slack.blocks import home as home_blocks
from backupbot.bot.slack.listeners.button_access import refusal
from backupbot.commands.access import BUTTON_ROLES
from backupbot.commands.refusals import record_unrecorded
from backupbot.commands.status import ChecklistSummary
from backupbot.errors import BackupbotError
from backupbot.phrases import Channel, Command, Name, Phrase, say

log = logging.getLogger(__name__)


def register(app: App, services: Services, client: WebClient) -> None:
    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any]) -> None:
        if event.get("tab", "home") == "home" and event.get("user"):
            services.jobs.submit(publish_home, services, client, str(event["user"]))

    @app.action(home_blocks.BACKUP_NOW_ACTION)
    def on_backup_now(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        services.jobs.submit(_backup_now, services, client, body)

    @app.action(home_blocks.RESTORE_ACTION)
    def on_restore(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        services.jobs.submit(_restore, services, client, body)

    @app.action(home_blocks.CHECKLIST_ACTION)
    def on_checklist(ack: Ack) -> None:
        ack()  # a link button: Slack opens the link and tells the app, which needs no more


def publish_home(
    services: Services, client: WebClient, user: str, notice: Phrase | None = None
) -> None:
    """Publish `user`'s Home view with the state as it is now; problems are logged."""
    try:
        overall = services.bot_status()
        options = home_blocks.HomeOptions(
            can_back_up=_may(services, user, "home.backup_now"),
            can_request_restore=_may(services, user, "home.restore"),
            checklist_url=_permalink(client, overall.checklist),
            notice=notice,
        )
        view = home_blocks.home_view(services.status_report(), overall, options)
        client.views_publish(user_id=user, view=view)
    except SlackApiError as exc:
        log.warning(
            "could not publish the Home tab for %s: %s", user, exc.response.get("error", "?")
        )
    except Exception as exc:  # the Home tab is a convenience: never take the bot down
        log.warning("could not publish the Home tab for %s (%s)", user, type(exc).__name__)


def _may(services: Services, user: str, action: str) -> bool:
    try:
        return services.access.has_role(user, BUTTON_ROLES[action])
    except BackupbotError:
        return False


def _permalink(client: WebClient, checklist: ChecklistSummary | None) -> str | None:
    if checklist is None or not checklist.channel or not checklist.message_ts:
        return None
    try:
        answer = client.chat_getPermalink(
            channel=checklist.channel, message_ts=checklist.message_ts
        )
    except SlackApiError:
        return None
    link = answer.get("permalink")
    return str(link) if link else None


def _admitted(services: Services, body: dict[str, Any], action: str) -> Phrase | None:
    """None if the clicker may take `action`; else the refusal (recorded) to show."""
    refused = refusal(services, body, action)
    return None if refused is None else say(":no_entry: {why}", why=refused.phrase)


def _channel(services: Services) -> str:
    slack = services.settings.slack
    return slack.channel if slack else ""


def _backup_now(services: Services, client: WebClient, body: dict[str, Any]) -> None:
    user = str(body["user"]["id"])
    database = str((body.get("actions") or [{}])[0].get("value", ""))
    notice = _admitted(services, body, "home.backup_now")
    if notice is None:
        try:
            record = services.backups.start(database, user, None)
            services.enqueue_backup(record)
            notice = say(
                ":arrow_forward: Backup {id} of {db} started; progress and the result will "
                "appear in {channel}.",
                id=Name(record.id),
                db=Name(record.database),
                channel=Channel(_channel(services)),
            )
        except BackupbotError as exc:
            record_unrecorded(
                services.incidents,
                exc,
                at=services.clock.now(),
                actor=user,
                command=f"button home.backup_now {database[:80]}",
            )
            notice = say(":warning: {why}", why=exc.phrase)
    publish_home(services, client, user, notice)


def _restore(services: Services, client: WebClient, body: dict[str, Any]) -> None:
    user = str(body["user"]["id"])
    notice = _admitted(services, body, "home.restore")
    if notice is None:
        names = services.settings.database_names
        database = names[0] if len(names) == 1 else "DB"
        notice = say(
            ":leftwards_arrow_with_hook: To request a restore, type {cmd} in {channel} "
            "(a backup id instead of `latest`; {into} for another target database). "
            "An approver is asked there.",
            cmd=Command("restore", database, "latest"),
            channel=Channel(_channel(services)),
            into=Name("--into DB"),
        )
    publish_home(services, client, user, notice)
