"""The commands: each declared once, for Slack (`/backup ...`), the CLI and both helps.

Each class is a request: its docstring is the help text (the first paragraph is the
summary `/backup help` and `backupbot --help` show), its fields the arguments, and
`@command` says where it is offered, the role it needs and whether it is slow (Slack
acknowledges it first and answers after; see `command_spec.py`). Adding a command means
a class here, a handler in each front end that offers it and its renderers.
"""

from __future__ import annotations

from typing import Any

from backupbot.commands.command_spec import (
    CLI_ONLY,
    REGISTRY,
    SLACK_ONLY,
    Databases,
    Role,
    Spec,
    Surface,
    command,
    database_arg,
    option,
    positional,
    spec_of,
    specs,
    switch,
)
from backupbot.commands.note_rules import DEFAULT_KIND, KINDS, check_note

__all__ = [
    "REGISTRY",
    "BackupNow",
    "Drill",
    "Help",
    "Log",
    "Migrations",
    "Note",
    "Points",
    "ReportRto",
    "RestoreRequest",
    "RestoreRun",
    "Retention",
    "Role",
    "Spec",
    "Status",
    "Surface",
    "spec_of",
    "specs",
]

MAX_LOG = 50
REASON_HELP = "why; shown to approvers and recorded"


@command("now", ("backup", "now"), role=Role.OPERATOR)
class BackupNow:
    """Take a verified backup now (e.g. before a risky deploy). Progress and the result
    appear in the channel.

    On the CLI, progress goes to stderr and the backup's id to stdout; exit 0 only when
    the backup is verified."""

    database: str = database_arg(Databases.ONE)
    label: str | None = option("--label", "TEXT", "e.g. pre-deploy")


_RESTORE_TOO_MANY = (
    '{c} takes a database and a backup (latest or an id); put the reason in quotes: --reason "why".'
)


@command(
    "restore",
    ("restore", "request"),
    role=Role.OPERATOR,
    slow=True,
    too_many=_RESTORE_TOO_MANY,
)
class RestoreRequest:
    """Ask to restore a backup; a second person approves in the channel. Without
    --into it goes to a new database <db>_restored_<time>; --in-place overwrites the
    source after a safety backup.

    With a provider section (neon:, supabase:, railway:, render:), --to TIME or
    --snapshot ID restore through the provider instead: into a new branch/instance, or
    --in-place where the provider can; the same approvals, then the result is verified."""

    database: str = database_arg(Databases.REQUIRED)
    backup_ref: str = positional("latest|BACKUP_ID", "latest (default) or an id", "latest")
    into: str | None = option(
        "--into",
        "TARGET",
        "restore into this database, or into a configured target (targets:)",
        excludes="in_place",
    )
    in_place: bool = switch("--in-place", "overwrite the source (safety backup first)")
    to: str | None = option(
        "--to", "TIME", 'provider point in time, e.g. "2026-11-30 14:05" (UTC unless --tz)'
    )
    tz: str | None = option("--tz", "ZONE", "read --to in this zone, e.g. Europe/Berlin")
    snapshot: str | None = option("--snapshot", "ID", "a provider snapshot (see points)")
    reason: str | None = option("--reason", "TEXT", REASON_HELP)
    slack_user: str | None = option(
        "--slack-user",
        "UID",
        "your Slack user id (U...), so you cannot approve your own request",
        surfaces=CLI_ONLY,
    )


@command(None, ("restore", "run"), role=Role.ADMIN, too_many=_RESTORE_TOO_MANY)
class RestoreRun:
    """Restore now without approval (break-glass), for when Slack is down: confirm with
    --break-glass and give a --reason; the record says so and the channel is told."""

    database: str = database_arg(Databases.REQUIRED)
    backup_ref: str = positional("latest|BACKUP_ID", "latest (default) or an id", "latest")
    into: str | None = option(
        "--into",
        "TARGET",
        "restore into this database, or into a configured target (targets:)",
        excludes="in_place",
    )
    in_place: bool = switch("--in-place", "overwrite the source (safety backup first)")
    reason: str | None = option("--reason", "TEXT", REASON_HELP)
    break_glass: bool = switch(
        "--break-glass", "confirm: run without a second person's approval (recorded as such)"
    )
    slack_user: str | None = option(
        "--slack-user",
        "UID",
        "your Slack user id (U...), so you cannot review your own break-glass restore",
        surfaces=CLI_ONLY,
    )


@command("points", ("points",), role=Role.VIEWER, slow=True)
class Points:
    """What a database can be restored to, in one list: the provider's point-in-time
    window and snapshots (with a provider section), and the bot's own verified backups."""

    database: str = database_arg(Databases.REQUIRED)


@command("drill", ("drill",), role=Role.OPERATOR, slow=True)
class Drill:
    """Run a restore drill now (every database when none is named): restore the latest
    verified backup into a scratch database, verify every table, time it against the
    RTO, drop it, post Pass/Fail.

    On the CLI the drill runs in this process; exit 0 only when every drill passed."""

    database: str | None = database_arg(Databases.ALL)


@command("postpone", ("postpone",), role=Role.OPERATOR)
class DrillPostpone:
    """Postpone the next scheduled restore drill of a database by 1 to 14 days, e.g. 3d
    (in Slack also: drill postpone DB DAYS); the scheduled run skips it, it runs then."""

    database: str = database_arg(Databases.REQUIRED)
    days: str = positional("DAYS", "how long, e.g. 3d (1d to 14d)", "")


@command("note", ("note",), role=Role.OPERATOR, slow=True)
class Note:
    """Record an operation done outside the bot in the incident log: a restore from a
    provider dashboard or a manual pg_restore (restore), a restore test done in staging
    by hand (staging-restore) or anything else (other, the default). Posted in the
    channel; a second person confirms a staging restore, which then counts for the
    checklist's test-restore item.

    TEXT (up to 2000 characters) says what was done, where and by whom; the author is
    recorded with it."""

    database: str = database_arg(Databases.REQUIRED)
    kind: str = positional(
        "kind",
        "restore, staging-restore or other (default)",
        DEFAULT_KIND,
        choices=KINDS,
        cli_flag="--kind",
    )
    text: str = positional("TEXT", "what was done, where and by whom", "", rest=True)
    as_user: str | None = option(
        "--as",
        "UID",
        "the author's Slack user id (U...), so they cannot confirm their own note",
        surfaces=CLI_ONLY,
    )

    def __post_init__(self) -> None:
        check_note(self.database, self.kind, self.text)


@command("retention", ("retention",), role=Role.VIEWER, slow=True)
class Retention:
    """Show what the next retention run would delete and why (nothing is deleted).

    On the CLI, --apply deletes it now, records it and tells the channel."""

    database: str | None = database_arg(Databases.ALL)
    apply: bool = switch("--apply", "delete now, and record it", surfaces=CLI_ONLY, role=Role.ADMIN)


@command("status", ("status",), role=Role.VIEWER, slow=True)
class Status:
    """Last good backup, last failure, backups kept, the RTO record, size and duration
    trends and anything worrying, per database.

    --chart posts a PNG chart in the channel (on the CLI: writes it to FILE): stored size
    and backup duration over 90 days, and the drills' recovery time against the RTO
    target."""

    database: str | None = database_arg(Databases.ALL)
    chart: bool = switch(
        "--chart", "post a 90-day size, duration and drill chart", surfaces=SLACK_ONLY
    )
    chart_file: str | None = option(
        "--chart", "FILE", "write the 90-day trend chart (PNG) to FILE", surfaces=CLI_ONLY
    )


@command("migrations", ("migrations",), role=Role.VIEWER, slow=True)
class Migrations:
    """Prisma's migrations as Prisma sees them: applied, failed and rolled back, and the
    head.

    Read from the database's _prisma_migrations, beside the head its newest verified
    backup recorded. A failed migration comes with the prisma migrate resolve
    --rolled-back command to run once what it changed is undone."""

    database: str = database_arg(Databases.ONE)


@command("log", ("log",), role=Role.VIEWER, slow=True, too_many="{c} takes at most one number.")
class Log:
    """The last n incident-log records (default 10).

    On the CLI, `log verify` walks the log's hash chain and names the first broken
    record (exit 1). --since/--until show every record in a time range instead (no
    limit): DATE is an ISO date (00:00 UTC) or date-time (UTC unless it has an offset),
    --since inclusive, --until exclusive. --format jsonl|csv exports the range (the
    whole log without --since/--until) for auditors, oldest first, with the hash-chain
    check (the last jsonl line; on stderr for csv); exit 1 when the chain is broken."""

    check: str | None = positional(
        "verify", "check the hash chain", surfaces=CLI_ONLY, choices=("verify",)
    )
    limit: int = positional(
        "n", "how many records", 10, bounds=(1, MAX_LOG), cli_flag="--limit", cli_bounds=(1, 500)
    )
    since: str | None = option(
        "--since", "DATE", "records at or after DATE (a date means 00:00 UTC)", surfaces=CLI_ONLY
    )
    until: str | None = option(
        "--until", "DATE", "records before DATE (a date means 00:00 UTC)", surfaces=CLI_ONLY
    )
    export_format: str | None = option(
        "--format", "FORMAT", "export as jsonl or csv (every record in range)", surfaces=CLI_ONLY
    )
    output: str | None = option(
        "--output", "FILE", "write to FILE (replaced whole, or left as it was)", surfaces=CLI_ONLY
    )


@command(None, ("report", "rto"), role=Role.VIEWER)
class ReportRto:
    """The RTO record for auditors: every restore drill since DATE with its result,
    duration, target, whether it was within the target and who reviewed it, then per
    database the drills, passes, failures and the median and worst duration.

    DATE is an ISO date (00:00 UTC) or date-time (UTC unless it has an offset); the
    default is 90 days ago. Read-only; needs no Slack."""

    since: str | None = option(
        "--since", "DATE", "drills started at or after DATE (default: 90 days ago)"
    )
    database: str | None = option("--database", "NAME", "one database (default: every one)")


@command("help", role=Role.VIEWER)
class Help:
    """This help."""


def required_role(request: Any) -> Role:
    """The role a request needs (the hook access rules check)."""
    return spec_of(request).required_role(request)


assert all(spec.summary for spec in REGISTRY.values()), "every command needs a docstring"
