"""`backupbot backup now`: progress lines, the result line and its JSON."""

from __future__ import annotations

from typing import Any

from backupbot.commands import humanize
from backupbot.commands.backup_progress import Progress
from backupbot.storage.catalog import SUCCEEDED, BackupRecord


def progress_line(p: Progress) -> str:
    done = f" ({humanize.size(p.bytes_done)})" if p.bytes_done else ""
    return f"[{p.backup_id}] {p.stage}{done}"


def result_line(record: BackupRecord) -> str:
    """One line: verified with size, duration, checksum and place, or failed and why;
    then a `warning:` line per connection pitfall the backup met."""
    if record.status != SUCCEEDED:
        return f"backup {record.id} of {record.database} failed: {record.error}"
    warnings = (record.manifest or {}).get("connection_warnings") or []
    return (
        f"backup {record.id} of {record.database} verified: "
        f"{humanize.size(record.stored_size)} in {humanize.duration(record.duration)}, "
        f"sha256 {record.sha256}, at {record.location}"
    ) + "".join(f"\nwarning: {w}" for w in warnings)


def record_json(r: BackupRecord | None) -> dict[str, Any] | None:
    """A backup's facts for scripts; None stays None."""
    if r is None:
        return None
    return {
        "id": r.id,
        "database": r.database,
        "status": r.status,
        "started_at": r.started_at.isoformat(),
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        "duration_seconds": r.duration.total_seconds() if r.duration else None,
        "stored_size": r.stored_size,
        "raw_size": r.raw_size,
        "sha256": r.sha256,
        "location": r.location,
        "label": r.label,
        "actor": r.actor,
        "error": r.error,
    }
