"""Backup messages: started, progress, result and the slash command's acknowledgement."""

from __future__ import annotations

from datetime import datetime

from backupbot.bot.slack.kit import (
    Message,
    channel_link,
    code,
    context,
    esc,
    fields,
    mention,
    notice,
    section,
)
from backupbot.commands import humanize
from backupbot.commands.backup_manifest import restore_command, verification_summary
from backupbot.commands.backup_progress import Progress
from backupbot.commands.schema_compare import schema_summary
from backupbot.storage.catalog import SUCCEEDED, BackupRecord


def _label(record: BackupRecord) -> str:
    return f" · label {code(record.label)}" if record.label else ""


def backup_started(record: BackupRecord) -> Message:
    text = f"Backup of {record.database} started by {record.actor} (id {record.id})."
    return Message(
        text,
        [
            section(
                f":hourglass_flowing_sand: *Backup of {code(record.database)} started* by "
                f"{mention(record.actor)}"
            ),
            context(f"id {code(record.id)}{_label(record)} · store {esc(record.store)}"),
        ],
    )


_STAGE_WORDS = {
    "snapshot": "taking a consistent snapshot and counting rows",
    "dumping": "dumping and compressing",
    "verifying": "reading the stored copy back to verify it",
}


def backup_progress(record: BackupRecord, progress: Progress) -> Message:
    words = _STAGE_WORDS.get(progress.stage, progress.stage)
    done = f", {humanize.size(progress.bytes_done)} so far" if progress.bytes_done else ""
    text = f"Backup of {record.database} running: {words}{done}."
    return Message(
        text,
        [
            section(
                f":hourglass_flowing_sand: *Backup of {code(record.database)} running*: "
                f"{words}{done}"
            ),
            context(f"id {code(record.id)} · started by {mention(record.actor)}{_label(record)}"),
        ],
    )


def backup_result(record: BackupRecord) -> Message:
    if record.status == SUCCEEDED:
        return _backup_succeeded(record)
    return _backup_failed(record)


def _backup_succeeded(record: BackupRecord) -> Message:
    manifest = record.manifest or {}
    counts: dict[str, int] = manifest.get("row_counts", {})
    prisma = manifest.get("prisma_migration") or {}
    size = f"{humanize.size(record.stored_size)} (raw {humanize.size(record.raw_size)})"
    text = (
        f"Backup of {record.database} succeeded: {humanize.size(record.stored_size)} in "
        f"{humanize.duration(record.duration)}, sha256 {record.sha256}, id {record.id}."
    )
    pairs = [
        ("Size", size),
        ("Duration", humanize.duration(record.duration)),
        ("SHA-256", code(f"{(record.sha256 or '')[:16]}…")),
        ("Stored at", code(record.location or "")),
        ("Tables / rows", f"{len(counts)} / {sum(counts.values()):,}"),
        ("Prisma migration", code(prisma["migration_name"]) if prisma else "none"),
    ]
    if isinstance(manifest.get("schema"), dict):
        pairs.append(("Schema recorded", esc(schema_summary(manifest["schema"]))))
    artifact = manifest.get("artifact", "FILE")
    warnings: list[str] = [str(w) for w in manifest.get("connection_warnings") or []]
    text += "".join(f" Warning: {w}" for w in warnings)
    return Message(
        text,
        [
            section(
                f":white_check_mark: *Backup of {code(record.database)} succeeded* and was "
                f"verified ({_code_tools(verification_summary(manifest))})"
            ),
            fields(pairs),
            *(section(f":warning: {esc(w)}") for w in warnings),
            context(
                f"id {code(record.id)} · by {mention(record.actor)}{_label(record)} · "
                f"PostgreSQL {esc(record.server_version)} · restore by hand: "
                f"{code(restore_command(artifact))}"
            ),
        ],
    )


def _backup_failed(record: BackupRecord) -> Message:
    error = record.error or "The backup did not finish."
    text = f"Backup of {record.database} failed (id {record.id}): {error}"
    return Message(
        text,
        [
            section(f":x: *Backup of {code(record.database)} failed*\n{esc(error)}"),
            context(
                f"id {code(record.id)} · by {mention(record.actor)}{_label(record)} · nothing was "
                f"kept · after {humanize.duration(record.duration)}"
            ),
        ],
    )


def started_ack(record: BackupRecord, channel: str, when: datetime) -> Message:
    return notice(
        f"Backup {code(record.id)} of {code(record.database)} started at {humanize.utc(when)}; "
        f"progress and the result will appear in {channel_link(channel)}."
    )


def _code_tools(summary: str) -> str:
    """The verification summary with the tool it names shown as code."""
    return summary.replace("pg_restore --list", "`pg_restore --list`")
