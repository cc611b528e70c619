"""The `/backup` slash command: parse into a registry request, answer, run its handler.

`HANDLERS` maps each request type of `commands/registry.py` to its Slack handler. A
handler returns the message to answer with. A slow command (see the registry) is
acknowledged at once and its handler runs after the acknowledgement on the job pool,
answering the requester with `respond`; a fast one answers in the acknowledgement.
The access rules (`commands/access.py`) are checked before any handler runs. Every
refusal, from the parser, the access rules or a handler, is answered and recorded here
(unless the service that refused recorded it already). The acting user is always the signed
payload's `user_id`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from backupbot.bot.services import Services
from backupbot.bot.slack import contract as slack_contract
from backupbot.bot.slack import kit
from backupbot.bot.slack.blocks import backup as backup_blocks
from backupbot.bot.slack.blocks import restore as restore_blocks
from backupbot.bot.slack.blocks import status as status_blocks
from backupbot.bot.slack.blocks.drill import drill_ack, drill_postponed, drill_refused
from backupbot.bot.slack.blocks.migrations import migrations_message
from backupbot.bot.slack.blocks.note import note_ack
from backupbot.bot.slack.blocks.points import points_message
from backupbot.bot.slack.blocks.retention import retention_dry_run
from backupbot.bot.slack.charts import post_charts
from backupbot.bot.slack.flows import Flows
from backupbot.bot.slack.flows.restore import RestoreFlow
from backupbot.commands import registry as r
from backupbot.commands.command_spec import usage_of
from backupbot.commands.parse import parse_command
from backupbot.commands.provider_request import ProviderAsk
from backupbot.commands.refusals import record_unrecorded
from backupbot.errors import BackupbotError, UsageError


@dataclass(frozen=True)
class Invocation:
    """One `/backup` command as received: who, what they typed, and where to answer."""

    services: Services
    flow: RestoreFlow
    client: WebClient
    user: str
    text: str

    @property
    def channel(self) -> str:
        slack = self.services.settings.slack
        return slack.channel if slack else ""


Handler = Callable[[Invocation, Any], kit.Message | None]


def register(app: App, services: Services, flow: RestoreFlow) -> None:
    @app.command(slack_contract.SLASH_COMMAND)
    def on_backup(ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond) -> None:
        call = Invocation(services, flow, client, command["user_id"], command.get("text", ""))
        try:
            request = parse_command(call.text, services.settings.database_names)
            caller = services.access.caller(
                call.user,
                team=command.get("team_id"),
                enterprise=command.get("enterprise_id") or None,
                channel=command.get("channel_id"),
            )
            services.access.require(caller, r.required_role(request))
        except BackupbotError as exc:
            ack(**refused(call, exc).as_kwargs())
            return
        handler = HANDLERS[type(request)]
        if not r.spec_of(request).slow:
            _ack(ack, _answer(call, handler, request))
            return
        early = ACKS.get(type(request))
        answer = early(call, request) if early else None
        # Submitted before the acknowledgement: once Slack has its answer the job exists.
        services.jobs.submit(_answer_later, call, handler, request, respond)
        _ack(ack, answer)


def _ack(ack: Ack, message: kit.Message | None) -> None:
    if message is None:
        ack()
    else:
        ack(**message.as_kwargs())


def refused(call: Invocation, exc: BackupbotError) -> kit.Message:
    """The answer to a refusal, recorded unless the service that refused recorded it."""
    services = call.services
    record_unrecorded(
        services.incidents, exc, at=services.clock.now(), actor=call.user, command=call.text
    )
    if isinstance(exc, UsageError):
        return kit.usage_error(exc.phrase, usage_of(exc.command))
    return kit.notice(f":warning: {kit.render(exc.phrase)}")


def _answer(call: Invocation, handler: Handler, request: Any) -> kit.Message | None:
    try:
        return handler(call, request)
    except BackupbotError as exc:
        return refused(call, exc)


def _answer_later(call: Invocation, handler: Handler, request: Any, respond: Respond) -> None:
    message = _answer(call, handler, request)
    if message is not None:
        respond(**message.as_kwargs())


def _help(call: Invocation, request: r.Help) -> kit.Message:
    return status_blocks.help_message()


def _backup_now(call: Invocation, request: r.BackupNow) -> kit.Message:
    services = call.services
    record = services.backups.start(request.database, call.user, request.label)
    # Queued before the acknowledgement, so once Slack has its answer the work is
    # recorded (durably, on PostgreSQL state) and tracked.
    services.enqueue_backup(record)
    return backup_blocks.started_ack(record, call.channel, record.started_at)


def _restore_request(call: Invocation, request: r.RestoreRequest) -> kit.Message:
    """Create the request (this looks at the target database, so it runs after the ack),
    post it in the channel, and tell the requester where it is."""
    record = call.services.restores.request(
        request.database,
        request.backup_ref,
        requester=call.user,
        into=request.into,
        in_place=request.in_place,
        reason=request.reason,
        provider=ProviderAsk(request.to, request.tz, request.snapshot, request.in_place),
    )
    record = call.flow.post_request(record)
    return restore_blocks.requested_ack(record, call.flow.channel)


def _points(call: Invocation, request: r.Points) -> kit.Message:
    """What the database can be restored to, to the requester only."""
    return points_message(call.services.points.points(request.database))


def _drill(call: Invocation, request: r.Drill) -> kit.Message | None:
    """Start and queue the drill(s); the channel shows them. A drill that cannot start is
    told to the requester only."""
    try:
        Flows(call.services, call.client).drill.queue(request.database, call.user)
    except BackupbotError as exc:
        refused(call, exc)
        return drill_refused(exc.phrase)
    return None


def _drill_ack(call: Invocation, request: r.Drill) -> kit.Message:
    names = [request.database] if request.database else call.services.settings.database_names
    return drill_ack(names, call.channel)


def _postpone(call: Invocation, request: r.DrillPostpone) -> kit.Message:
    p = call.services.postponements.postpone(request.database, request.days, call.user)
    return drill_postponed(p)


def _note(call: Invocation, request: r.Note) -> kit.Message:
    """Record the note (with its `note.recorded` record), post it in the channel, and
    tell the author where it is."""
    note = call.services.notes.record(request.database, request.kind, request.text, call.user)
    return note_ack(Flows(call.services, call.client).note.post(note))


def _status(call: Invocation, request: r.Status) -> kit.Message:
    services = call.services
    report, overall = services.status_report(request.database), services.bot_status()
    posts = None
    if request.chart:
        charts = services.status.charts(request.database)
        posts = post_charts(call.client, call.channel, charts) if call.channel else []
    return status_blocks.status_message(report, overall, posts, call.channel)


def _retention(call: Invocation, request: r.Retention) -> kit.Message:
    """The dry run, to the requester only: nothing is deleted."""
    services = call.services
    return retention_dry_run(services.retention.plan(request.database, services.clock.now()))


def _migrations(call: Invocation, request: r.Migrations) -> kit.Message:
    return migrations_message(call.services.migrations.view(request.database))


def _log(call: Invocation, request: r.Log) -> kit.Message:
    incidents = call.services.incidents
    return status_blocks.log_message(incidents.recent(request.limit), incidents.verify())


HANDLERS: dict[type[Any], Handler] = {
    r.Help: _help,
    r.BackupNow: _backup_now,
    r.RestoreRequest: _restore_request,
    r.Drill: _drill,
    r.DrillPostpone: _postpone,
    r.Note: _note,
    r.Retention: _retention,
    r.Status: _status,
    r.Log: _log,
    r.Points: _points,
    r.Migrations: _migrations,
}
ACKS: dict[type[Any], Handler] = {
    r.RestoreRequest: lambda call, request: kit.notice(
        "Asking the provider for its recovery window…"
        if request.to or request.snapshot
        else "Checking the backup and the target database…"
    ),
    r.Drill: _drill_ack,
}
