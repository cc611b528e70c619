"""The CLI's operations: each runs one service call and prints what the renderers in
`bot/cli/render/` make of the result. Human text goes to stderr when stdout is for
scripts (a backup id, a restore id, `--json`); exit codes: 0 ok, 1 the operation failed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

from backupbot.bot.cli import log_export
from backupbot.bot.cli.common import cli_actor
from backupbot.bot.cli.common import print_json as _print_json
from backupbot.bot.cli.render import backup as backup_text
from backupbot.bot.cli.render import cli_command
from backupbot.bot.cli.render import drill as drill_text
from backupbot.bot.cli.render import log as log_text
from backupbot.bot.cli.render import migrations as migrations_text
from backupbot.bot.cli.render import note as note_text
from backupbot.bot.cli.render import points as points_text
from backupbot.bot.cli.render import restore as restore_text
from backupbot.bot.cli.render import retention as retention_text
from backupbot.bot.cli.render import rto as rto_text
from backupbot.bot.cli.status_cmd import status
from backupbot.bot.services import Services
from backupbot.bot.slack.blocks.retention import retention_summary
from backupbot.bot.slack.delivery import post
from backupbot.bot.slack.flows import Flows
from backupbot.bot.slack.flows.restore import RestoreFlow
from backupbot.commands import registry as r
from backupbot.commands.backup_progress import Progress
from backupbot.commands.command_spec import resolve_database
from backupbot.commands.drill_model import DrillStage
from backupbot.commands.provider_request import ProviderAsk
from backupbot.commands.restore_model import RestoreProgress
from backupbot.errors import UsageError
from backupbot.storage.catalog import SUCCEEDED


def _say(*lines: str) -> None:
    """Human text beside a script's stdout."""
    for line in lines:
        print(line, file=sys.stderr)


def backup_now(services: Services, request: r.BackupNow, as_json: bool) -> int:
    """Take a verified backup; stdout is its id (or its JSON), exit 0 only when verified."""

    def progress(p: Progress) -> None:
        _say(backup_text.progress_line(p))

    record = services.backups.backup_now(request.database, cli_actor(), request.label, progress)
    _say(backup_text.result_line(record))
    if as_json:
        _print_json(backup_text.record_json(record))
    elif record.status == SUCCEEDED:
        print(record.id)
    return 0 if record.status == SUCCEEDED else 1


def _restore_flow(services: Services) -> RestoreFlow | None:
    if services.slack_client is None or services.settings.slack is None:
        return None
    return Flows(services, services.slack_client).restore


def restore_request(services: Services, request: r.RestoreRequest, as_json: bool) -> int:
    """Post a restore request in Slack, where a second person approves it."""
    flow = _restore_flow(services)
    if flow is None:
        raise UsageError(
            "restore request needs Slack (SLACK_BOT_TOKEN and a slack: section), where the "
            "request is approved. Without Slack: "
            f"{cli_command('restore', 'run', request.database)} --break-glass --reason TEXT."
        )
    record = services.restores.request(
        request.database,
        request.backup_ref,
        requester=_slack_user(request.slack_user) or cli_actor(),
        into=request.into,
        in_place=request.in_place,
        reason=request.reason,
        provider=ProviderAsk(request.to, request.tz, request.snapshot, request.in_place),
    )
    record = flow.post_request(record)
    _say(restore_text.request_posted(record))
    if as_json:
        _print_json(restore_text.record_json(record))
    else:
        print(record.id)
    return 0


def _slack_user(value: str | None, flag: str = "--slack-user") -> str | None:
    """A `--slack-user` (or `flag`) value, checked: a Slack user id (U… or W…)."""
    if value is not None and not re.fullmatch(r"[UW][A-Z0-9]{2,20}", value):
        raise UsageError(
            f"{flag} takes a Slack user id such as U0123ABCD, not {value[:40]!r}: "
            "copy it from your Slack profile (⋮, Copy member ID)."
        )
    return value


def restore_run(services: Services, request: r.RestoreRun, as_json: bool) -> int:
    """A break-glass restore: now, without approval, recorded as such."""
    if not request.break_glass:
        raise UsageError(
            "restore run restores without a second person's approval: confirm with "
            "--break-glass --reason TEXT, or ask in Slack with "
            f"{cli_command('restore', 'request', request.database)}."
        )
    if not request.reason:
        raise UsageError("A break-glass restore needs --reason TEXT; it goes in the record.")

    def progress(p: RestoreProgress) -> None:
        _say(restore_text.progress_line(p))

    record = services.restores.break_glass(
        request.database,
        request.backup_ref,
        actor=_slack_user(request.slack_user) or cli_actor(),
        reason=request.reason,
        into=request.into,
        in_place=request.in_place,
        on_progress=progress,
    )
    flow = _restore_flow(services)
    announced = bool(flow and flow.announce_pending())
    _say(*restore_text.run_result(record, announced=announced))
    if as_json:
        _print_json(restore_text.record_json(record, announced=announced))
    else:
        print(record.id)
    return 0 if record.status == "succeeded" else 1


def drill(services: Services, request: r.Drill, as_json: bool) -> int:
    """Run restore drills (one database or every one) here, one after another; posted in
    the channel too when Slack is configured. stdout: each drill's id, or a JSON list
    for several databases (an object for one)."""

    def progress(p: DrillStage) -> None:
        _say(drill_text.progress_line(p))

    client = services.slack_client if services.settings.slack else None
    services.take_over_abandoned()  # a drill whose process is gone must not block this one
    records = Flows(services, client).drill.run(request.database, cli_actor(), progress)
    for record in records:
        told = None if client is None else record.message_ts is not None
        _say(*drill_text.result_lines(record, channel_told=told))
    if as_json:
        found = [drill_text.record_json(record) for record in records]
        _print_json(found[0] if request.database else found)
    else:
        print("\n".join(record.id for record in records))
    return 0 if records and all(record.status == "passed" for record in records) else 1


def retention(services: Services, request: r.Retention, as_json: bool) -> int:
    """Dry run by default; `--apply` deletes now (actor cli:<user>) and tells the channel."""
    now, database = services.clock.now(), request.database
    if not request.apply:
        plan = services.retention.plan(database, now)
        if as_json:
            _print_json(plan.as_json())
        else:
            print("\n".join(retention_text.plan_lines(plan)))
        return 0
    report = services.retention.apply(now, cli_actor(), database)
    if as_json:
        _print_json(report.as_json())
    else:
        print("\n".join(retention_text.report_lines(report)))
    summary = retention_summary(report)
    if summary is not None and services.slack_client is not None and services.settings.slack:
        post(services.slack_client, services.settings.slack.channel, summary)
    return 0 if report.ok else 1


def log(services: Services, request: r.Log, as_json: bool) -> int:
    """The newest records, or with `verify` the hash chain's check; with a range, a
    format or a file, `log_export`."""
    if log_export.wants_range(request):
        return log_export.log_range(services, request, as_json, cli_actor())
    if request.check == "verify":
        return log_verify(services, as_json)
    records = services.incidents.recent(request.limit)
    if as_json:
        _print_json([i.as_json() for i in records])
    elif records:
        print("\n".join(log_text.log_lines(records)))
    return 0


def log_verify(services: Services, as_json: bool) -> int:
    """Walk the incident log's hash chain; exit 1 and name the first broken record."""
    check = services.incidents.verify()
    if as_json:
        _print_json(log_text.verify_json(check))
    else:
        print(log_text.verify_line(check))
    return 0 if check.intact else 1


def report_rto(services: Services, request: r.ReportRto, as_json: bool) -> int:
    """The RTO record for auditors: every drill since --since, and each database's summary."""
    since = None if request.since is None else log_export.parse_when(request.since, "--since")
    names = services.settings.database_names
    database = None if request.database is None else resolve_database(request.database, names, "")
    report = services.status.rto_report(since, database)
    if as_json:
        _print_json(rto_text.report_json(report))
    else:
        print("\n".join(rto_text.report_lines(report)))
    return 0


def migrations(services: Services, request: r.Migrations, as_json: bool) -> int:
    """Prisma's migration history of a database; exit 1 when a migration failed."""
    view = services.migrations.view(request.database)
    if as_json:
        _print_json(view.as_json())
    else:
        print("\n".join(migrations_text.view_lines(view)))
    return 1 if view.failed else 0


def postpone(services: Services, request: r.DrillPostpone, as_json: bool) -> int:
    """Move the next scheduled drill of a database; stdout: its new time (ISO 8601)."""
    p = services.postponements.postpone(request.database, request.days, cli_actor())
    _say(drill_text.postponed_line(p))
    if as_json:
        _print_json(drill_text.postponement_json(p))
    else:
        print(p.run_at.isoformat())
    return 0


def note(services: Services, request: r.Note, as_json: bool) -> int:
    """Record an operation done elsewhere (author: --as UID or cli:<user>), post it in the
    channel when Slack is configured; stdout: the note's id."""
    author = _slack_user(request.as_user, "--as") or cli_actor()
    via = cli_actor() if request.as_user else None
    recorded = services.notes.record(request.database, request.kind, request.text, author, via)
    told = None
    if services.slack_client is not None and services.settings.slack:
        recorded = Flows(services, services.slack_client).note.post(recorded)
        told = recorded.message_ts is not None
    _say(note_text.recorded_line(recorded, told))
    if as_json:
        _print_json(note_text.note_json(recorded, told))
    else:
        print(recorded.id)
    return 0


def points(services: Services, request: r.Points, as_json: bool) -> int:
    """What the database can be restored to: provider window, snapshots, bot backups."""
    report = services.points.points(request.database)
    if as_json:
        _print_json(points_text.points_json(report))
    else:
        print("\n".join(points_text.points_lines(report)))
    return 0


HANDLERS: dict[type[Any], Callable[[Services, Any, bool], int]] = {
    r.BackupNow: backup_now,
    r.RestoreRequest: restore_request,
    r.RestoreRun: restore_run,
    r.Drill: drill,
    r.DrillPostpone: postpone,
    r.Note: note,
    r.Retention: retention,
    r.Status: status,
    r.Log: log,
    r.ReportRto: report_rto,
    r.Points: points,
    r.Migrations: migrations,
}
