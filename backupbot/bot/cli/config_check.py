"""`backupbot config check [--live]`: the configuration as the bot will use it (absolute
paths, schedules, warnings for `serve`), and with `--live` whether every database, the
store and Slack answer. Never prints a secret: URLs are redacted, S3 keys not shown."""

from __future__ import annotations

import os
import stat
import tempfile
from datetime import UTC, datetime

from backupbot.bot.cli.render import cli_command, render
from backupbot.bot.infrastructure import access_rules, approval_policy
from backupbot.commands import humanize
from backupbot.commands.access import role_name
from backupbot.commands.approval_stages import ALL, Stage
from backupbot.commands.command_spec import Role
from backupbot.commands.schedule import jobs_from_settings
from backupbot.errors import BackupbotError, ConfigError
from backupbot.settings import DatabaseSettings, Settings, SlackCredentials
from backupbot.settings.connection_advice import pitfalls, shares_snapshot
from backupbot.storage.agestream import (
    IDENTITY_SETTING,
    RECIPIENTS_SETTING,
    KeyUnavailable,
    load_identities,
)
from backupbot.storage.pgconn import ConnInfo, redact


def config_check(settings: Settings, live: bool) -> int:
    """Print what the configuration means; exit 1 if a `--live` check failed."""
    identity = _identity(settings)  # a ConfigError (exit 2) before anything is printed
    names = ", ".join(settings.database_names)
    print(f"config OK: {len(settings.databases)} database(s): {names}")
    for line in [*_where(settings), *identity, *_access(settings), *_notes(settings)]:
        print(line)
    if not live:
        return 0
    failed = not _live_checks(settings)
    failed = not _provider_checks(settings) or failed
    failed = not _slack_live_check(settings) or failed
    return 1 if failed else 0


def _where(settings: Settings) -> list[str]:
    """Where things are, as absolute paths (relative ones in the file mean next to it)."""
    lines = [f"config file: {settings.config_file or '(none; paths relative to the cwd)'}"]
    state_file = settings.state_file
    if state_file is None:
        lines.append(f"state database: {redact(settings.state_url)}")
    else:
        new = "" if state_file.exists() else ", does not exist yet"
        lines.append(f"state database: {state_file} (SQLite{new})")
    if settings.storage.local is not None:
        lines.append(f"store: local directory {settings.storage.local.path}")
    elif (s3 := settings.storage.s3) is not None:
        endpoint = redact(s3.endpoint_url) if s3.endpoint_url else "AWS"
        region = f", region {s3.region}" if s3.region else ""
        lock = s3.object_lock
        locked = f", object lock {lock.mode} {lock.days} days" if lock else ""
        lines.append(
            f"store: S3 bucket {s3.bucket}, prefix {s3.prefix or '(none)'}, "
            f"endpoint {endpoint}{region}{locked}"
        )
    work_dir = settings.restore.work_dir
    lines.append(f"restore work dir: {work_dir or f'{tempfile.gettempdir()} (default: $TMPDIR)'}")
    if settings.backup.pg_bin_dirs:
        dirs = ", ".join(str(d) for d in settings.backup.pg_bin_dirs)
        lines.append(f"pg_dump/pg_restore also looked for in: {dirs}")
    return lines + _targets(settings)


def _targets(settings: Settings) -> list[str]:
    """Each restore target, and whose drills run on its server."""
    lines = []
    for name, target in sorted(settings.targets.items()):
        drills = [n for n in settings.database_names if settings.drill_target(n) == name]
        used = f"; drills of {', '.join(drills)} run on its server" if drills else ""
        about = f" ({target.description})" if target.description else ""
        lines.append(f"target {name}{about}: {target.conn.where} (--into {name}){used}")
    return lines


def _identity(settings: Settings) -> list[str]:
    """`backup.verify_identity`: the file exists, the bot can read it, it holds an age
    identity whose public key is one of `backup.encrypt_to` (a `ConfigError` otherwise),
    and a warning when group or others may read it. Never shows the private key."""
    path = settings.backup.verify_identity
    if path is None:
        return []

    def invalid(problem: str) -> ConfigError:
        source = str(settings.config_file) if settings.config_file else "configuration"
        return ConfigError([f"{IDENTITY_SETTING}: {problem}"], source)

    if path.exists() and not path.is_file():
        raise invalid(f"{path} is not a file; name the age identity file (age-keygen -o FILE).")
    try:
        identities = load_identities(path)
    except KeyUnavailable as exc:
        raise invalid(render(exc.phrase)) from None
    publics = sorted({str(i.to_public()) for i in identities})
    recipients = settings.backup.encrypt_to
    matching = [p for p in publics if p in recipients]
    lines: list[str] = []
    if not recipients:
        lines.append(
            f"note: {IDENTITY_SETTING} {path} is set but {RECIPIENTS_SETTING} is empty: new "
            "backups are not encrypted; the identity decrypts older encrypted ones for restores"
        )
    elif not matching:
        raise invalid(
            f"{path} holds no private key for any of {RECIPIENTS_SETTING} (it holds the key "
            f"of {', '.join(publics)}), so verification could not decrypt the backups. Name "
            f"the identity file of one of them, or add its public key to {RECIPIENTS_SETTING}."
        )
    else:
        lines.append(
            f"verify identity: {path}, the key of {', '.join(matching)}: encrypted backups "
            "are fully verified, and restores and drills decrypt with it"
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o044:
        lines.append(
            f"warning: {IDENTITY_SETTING} {path} may be read by group or others (mode "
            f"{mode:04o}): it holds a private key; chmod 600 {path}"
        )
    return lines


def _access(settings: Settings) -> list[str]:
    """Who may do what (`commands/access.py`), as the bot will apply it."""
    if settings.slack is None:
        return []
    rules = access_rules(settings)
    lines = ["access (who may do what; each role includes the ones below it):"]
    for role in sorted(Role, reverse=True):
        members = sorted(rules.grants.get(role, frozenset()))
        if members:
            lines.append(f"  {role_name(role)}: {', '.join(members)}")
    default = role_name(rules.default) if rules.default else "nothing (no role)"
    lines.append(f"  everyone else in the channel: {default}")
    lines.append(f"  /backup is taken in: {', '.join('#' + c for c in sorted(rules.channels))}")
    if rules.team:
        lines.append(f"  and only from workspace {rules.team}")
    policy = approval_policy(settings)
    lines.append("approvals of restore requests (stages in order; the requester never counts):")
    lines.append(f"  every restore: {_stages_line(policy.stages)}")
    lines.append(f"  in place over a protected database: {_stages_line(policy.protected_in_place)}")
    return lines


def _stages_line(stages: tuple[Stage, ...]) -> str:
    def one(i: int, s: Stage) -> str:
        need = "all" if s.need == ALL else str(s.needed)
        who = ", ".join(s.approvers) or "the approver role"
        return f"{i}. {s.name}: {need} of {who}"

    return " → ".join(one(i, s) for i, s in enumerate(stages, 1))


def _role_stage(settings: Settings) -> bool:
    """Whether some approval stage names nobody and so falls back to the approver role."""
    policy = approval_policy(settings)
    return any(not s.approvers for s in (*policy.stages, *policy.protected_in_place))


def _notes(settings: Settings) -> list[str]:
    """What `serve` would lack, the schedules' next runs, escalation levels that ping
    nobody."""
    lines: list[str] = []
    serve = cli_command("serve")
    problems = SlackCredentials.from_env(os.environ).problems_for_serving()
    if settings.slack is None:
        problems.append(f"slack: no slack: section; {serve} needs slack.channel")
    elif not access_rules(settings).holders(Role.APPROVER) and _role_stage(settings):
        lines.append(
            "warning: nobody may approve a restore, so restore requests cannot be approved: "
            "set slack.approvers, slack.approver_group or access.roles.approver (a second "
            "person always approves; break-glass restores from the CLI still work)"
        )
    lines.extend(f"warning (needed for {serve}): {p}" for p in problems)
    now = datetime.now(UTC)
    for job in jobs_from_settings(settings):
        when = humanize.zoned(job.next_fire(now), job.timezone)
        lines.append(f"schedule {job.name}: {job.cron} ({job.timezone}), next {when}")
    for i, level in enumerate(settings.escalation.levels):
        if not level.mention and not level.provider_support:
            lines.append(
                f"note: escalation.levels[{i}] ({level.name}) mentions nobody; its pings only "
                "post in the alert's thread. Add Slack user or group ids to its mention list."
            )
    return lines


def _live_checks(settings: Settings) -> bool:
    """Reach the store and every database (and find a matching pg_dump); False if any
    failed."""
    from backupbot.bot.infrastructure import build_store

    ok = True
    try:
        store = build_store(settings.storage, settings.backup.verify)
        store.check()
        print("store OK")
        ok = _object_lock_check(settings, store)
    except BackupbotError as exc:
        ok = False
        print(f"store FAILED: {render(exc.phrase)}")
    for db in settings.databases:
        try:
            ok = _database_check(settings, db) and ok
        except BackupbotError as exc:
            ok = False
            print(f"{db.name} FAILED: {render(exc.phrase)}")
    return _target_checks(settings) and ok


def _database_check(settings: Settings, db: DatabaseSettings) -> bool:
    """Connect as a backup would (a transaction pooler asked for first, then a snapshot
    exported unless through one), find a pg_dump at least the server's major version, and
    print each connection pitfall (`settings/connection_advice.py`) as a warning line."""
    from backupbot.storage.pg_binaries import find_binaries
    from backupbot.storage.pg_pooling import transaction_pooled
    from backupbot.storage.pginspect import SnapshotSession

    url = db.url.get_secret_value()
    conn = ConnInfo.from_url(url)
    pooled = transaction_pooled(conn)
    session = SnapshotSession(conn, share=shares_snapshot(url, db.provider, pooled=pooled))
    try:
        bins = find_binaries(session.server.major, settings.backup.pg_bin_dirs)
    finally:
        session.close()
    print(f"{db.name} OK: PostgreSQL {session.server.version}, pg_dump {bins.version}")
    found = pitfalls(db.name, url, db.provider, pooled=pooled, export_error=session.export_error)
    for pitfall in found:
        print(f"warning: {pitfall.text}")
    return True


def _provider_checks(settings: Settings) -> bool:
    """Reach every configured provider API (`neon:`, `supabase:`, `railway:`, `render:`
    sections) with its credential; one line each, never the key. False if any failed."""
    from backupbot.storage.providers.factory import adapter_for

    ok = True
    for db in settings.databases:
        adapter = adapter_for(db)
        if adapter is None:
            continue
        try:
            health = adapter.health()
        except BackupbotError as exc:
            ok = False
            print(f"{db.name} provider {db.provider} FAILED: {render(exc.phrase)}")
            continue
        except (KeyError, TypeError, ValueError) as exc:
            ok = False
            print(
                f"{db.name} provider {db.provider} FAILED: the API answered in an unexpected "
                f"shape ({type(exc).__name__}); check api_url"
            )
            continue
        print(f"{db.name} provider {db.provider} OK: {health.detail or 'reachable'}")
    return ok


def _target_checks(settings: Settings) -> bool:
    """Reach every target's server and say what a restore there would overwrite."""
    from backupbot.storage.pgadmin import inspect_target, server_major

    ok = True
    for name, target in sorted(settings.targets.items()):
        try:
            major = server_major(target.conn)
            facts = inspect_target(target.conn)
        except BackupbotError as exc:
            ok = False
            print(f"target {name} FAILED: {render(exc.phrase)}")
            continue
        holds = (
            f"{target.conn.dbname} holds {facts.tables} table(s)"
            if facts.exists
            else f"{target.conn.dbname} does not exist yet (a restore creates it)"
        )
        print(f"target {name} OK: PostgreSQL {major}, {holds}")
    return ok


def _object_lock_check(settings: Settings, store: object) -> bool:
    """With `storage.s3.object_lock`, whether the bucket has Object Lock enabled."""
    from backupbot.storage.s3_store import S3Store

    s3 = settings.storage.s3
    if s3 is None or s3.object_lock is None or not isinstance(store, S3Store):
        return True
    lock = f"{s3.object_lock.mode}, {s3.object_lock.days} days"
    if store.lock_enabled():
        print(f"object lock OK: bucket {s3.bucket} has Object Lock enabled ({lock})")
        return True
    print(
        f"object lock FAILED: bucket {s3.bucket} does not have Object Lock enabled, so "
        f"storage.s3.object_lock ({lock}) cannot be applied. Create the bucket with "
        "--object-lock-enabled-for-bucket, or enable it on the versioned bucket with "
        "aws s3api put-object-lock-configuration."
    )
    return False


def _slack_live_check(settings: Settings) -> bool:
    """Ask Slack whether the token works and the channel exists, and show the last
    delivery failure the bot recorded (`slack.delivery_failed`). False if Slack refused."""
    from backupbot.bot.infrastructure import build_slack_client
    from backupbot.bot.slack.delivery import live_check

    client = build_slack_client(SlackCredentials.from_env(os.environ))
    ok = True
    if client is not None:
        ok, line = live_check(client, settings.slack.channel if settings.slack else None)
        print(line)
    try:
        from backupbot.storage.incidents import IncidentLog
        from backupbot.storage.state import create_state_engine

        if settings.state_file is not None and not settings.state_file.exists():
            return ok
        engine = create_state_engine(settings.state_url)
        try:
            recent = IncidentLog(engine).recent(500)
        finally:
            engine.dispose()
    except Exception:  # no state database yet, or not reachable: nothing recorded to show
        return ok
    failure = next((i for i in recent if i.action == "slack.delivery_failed"), None)
    if failure is not None:
        d = failure.details
        print(
            f"last Slack delivery failure the bot recorded: {humanize.utc(failure.at)}, "
            f"{d.get('channel')}: {d.get('error')}"
        )
    return ok
