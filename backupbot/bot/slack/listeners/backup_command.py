"""The `/backup` slash command: parse, call one command, acknowledge, render.

Everything slow (the backup itself) runs after the acknowledgement in a background job;
the channel message posted at the start is updated in place with progress and the result.
The acting user is always the signed payload's `user_id`.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from backupbot.bot.composition import Services
from backupbot.bot.slack import contract as slack_contract
from backupbot.bot.slack import kit
from backupbot.bot.slack.blocks import backup as backup_blocks
from backupbot.bot.slack.blocks import restore as restore_blocks
from backupbot.bot.slack.blocks import status as status_blocks
from backupbot.bot.slack.blocks.drill import drill_ack, drill_refused
from backupbot.bot.slack.blocks.retention import retention_dry_run
from backupbot.bot.slack.flows.drill import DrillFlow
from backupbot.bot.slack.flows.restore import RestoreFlow
from backupbot.commands.parse import ParsedCommand, parse_command
from backupbot.errors import BackupbotError, UsageError


def register(app: App, services: Services, flow: RestoreFlow) -> None:
    @app.command(slack_contract.SLASH_COMMAND)
    def on_backup(ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond) -> None:
        user = command["user_id"]
        text = command.get("text", "")
        try:
            parsed = parse_command(text, services.settings.database_names)
        except UsageError as exc:
            services.incidents.record(
                at=services.clock.now(),
                actor=user,
                action="command.rejected",
                outcome="refused",
                details={"command": text[:200], **exc.refusal()},
            )
            ack(**kit.usage_error(exc.phrase, exc.usage).as_kwargs())
            return
        if parsed.name == "help":
            ack(**status_blocks.help_message().as_kwargs())
        elif parsed.name == "now":
            _backup_now(ack, respond, client, services, user, parsed)
        elif parsed.name == "restore":
            services.jobs.submit(_restore_request, services, flow, respond, user, parsed)
            ack(**kit.notice("Checking the backup and the target database…").as_kwargs())
        elif parsed.name == "status":
            services.jobs.submit(_respond_status, services, respond, parsed.database)
            ack()
        elif parsed.name == "drill":
            names = [parsed.database] if parsed.database else services.settings.database_names
            services.jobs.submit(_drill, services, client, respond, user, parsed.database)
            channel = services.settings.slack.channel if services.settings.slack else ""
            ack(**drill_ack(names, channel).as_kwargs())
        elif parsed.name == "retention":
            services.jobs.submit(_respond_retention, services, respond, parsed.database)
            ack()
        elif parsed.name == "log":
            services.jobs.submit(_respond_log, services, respond, parsed.limit or 10)
            ack()


def _restore_request(
    services: Services, flow: RestoreFlow, respond: Respond, user: str, parsed: ParsedCommand
) -> None:
    """Create the request (this looks at the target database, so it runs after the ack),
    post it in the channel, and tell the requester where it is."""
    assert parsed.database is not None
    try:
        record = services.restores.request(
            parsed.database,
            parsed.backup_ref,
            requester=user,
            into=parsed.into,
            in_place=parsed.in_place,
            reason=parsed.reason,
        )
        record = flow.post_request(record)
    except UsageError as exc:
        respond(**kit.usage_error(exc.phrase, exc.usage).as_kwargs())
        return
    except BackupbotError as exc:
        respond(**kit.notice(f":warning: {kit.render(exc.phrase)}").as_kwargs())
        return
    respond(**restore_blocks.requested_ack(record, flow.channel).as_kwargs())


def _drill(
    services: Services, client: WebClient, respond: Respond, user: str, database: str | None
) -> None:
    """Start and queue the drill(s); the channel shows them. A drill that cannot start is
    told to the requester only."""
    try:
        DrillFlow(services, client).queue(database, user)
    except BackupbotError as exc:
        respond(**drill_refused(exc.phrase).as_kwargs())


def _respond_status(services: Services, respond: Respond, database: str | None) -> None:
    report, overall = services.status_report(database), services.bot_status()
    respond(**status_blocks.status_message(report, overall).as_kwargs())


def _respond_retention(services: Services, respond: Respond, database: str | None) -> None:
    """The dry run, to the requester only: nothing is deleted."""
    plan = services.retention.plan(database, services.clock.now())
    respond(**retention_dry_run(plan).as_kwargs())


def _respond_log(services: Services, respond: Respond, limit: int) -> None:
    chain = services.incidents.verify()
    respond(**status_blocks.log_message(services.incidents.recent(limit), chain).as_kwargs())


def _backup_now(
    ack: Ack,
    respond: Respond,
    client: WebClient,
    services: Services,
    user: str,
    parsed: ParsedCommand,
) -> None:
    assert parsed.database is not None and services.settings.slack is not None
    channel = services.settings.slack.channel
    try:
        record = services.backups.start(parsed.database, user, parsed.label)
        # Queued before the acknowledgement, so once Slack has its answer the work is
        # recorded (durably, on PostgreSQL state) and tracked.
        services.enqueue_backup(record)
    except BackupbotError as exc:
        ack(**kit.notice(kit.render(exc.phrase)).as_kwargs())
        return
    ack(**backup_blocks.started_ack(record, channel, record.started_at).as_kwargs())
