"""Names a backup is given: its artifact and manifest keys in the store, and its label."""

from __future__ import annotations

from datetime import datetime

from backupbot.errors import UsageError
from backupbot.storage.dumpstream import EXTENSION

MAX_LABEL = 200


def artifact_keys(
    database: str, started_at: datetime, backup_id: str, suffix: str = "", ext: str = EXTENSION
) -> tuple[str, str]:
    """`<database>/<UTC timestamp>-<id>.dump.zst` (`suffix` `.age`: encrypted; `ext`
    `.tar.zst`: a parallel directory-format dump) and its manifest beside it."""
    stem = f"{database}/{started_at.strftime('%Y%m%dT%H%M%SZ')}-{backup_id}"
    return stem + ext + suffix, stem + ".manifest.json"


def validate_label(label: str | None) -> str | None:
    """`--label`'s text, stripped; one line of at most MAX_LABEL characters."""
    if label is None:
        return None
    label = label.strip()
    if not label:
        raise UsageError("--label needs some text, e.g. --label pre-deploy.")
    if len(label) > MAX_LABEL or any(ord(c) < 32 for c in label):
        raise UsageError(f"A label must be one line of at most {MAX_LABEL} characters.")
    return label
