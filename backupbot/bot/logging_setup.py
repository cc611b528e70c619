"""Logging: JSON lines in production, readable text for people at a terminal.

`extra={...}` keys of a log call become fields of its JSON line; `backupbot.logsafe`
keeps them from colliding with the record's own attributes. Every line is scrubbed of
the database passwords the bot knows (`backupbot.dburl.scrub`), and Slack's libraries
log at INFO at most: at DEBUG they would write request and response bodies.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from backupbot.dburl import scrub
from backupbot.logsafe import RESERVED


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(_scrubbed(entry))


def _scrubbed(value: Any) -> Any:
    """`value` made JSON-ready (unknown types as their `str`), every string scrubbed."""
    if isinstance(value, dict):
        return {str(k): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub(value if isinstance(value, str) else str(value))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure_logging` installs (and replaces on the next call)."""


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Send the root logger's records to stderr as JSON lines (`json`) or text."""
    handler = _Handler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else TextFormatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _Handler)] + [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for bodies in ("slack_bolt", "slack_sdk"):
        logging.getLogger(bodies).setLevel(max(logging.INFO, root.level))
