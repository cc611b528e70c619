"""Log calls that can never break the work they describe.

`extra={...}` keys become fields of the record (and of the JSON log line). A key that is
already a `LogRecord` attribute (`args`, `msg`, `name`, ...) makes the standard library
raise `KeyError` at the call, and only when that level is enabled: a production-only
crash. `SafeLogger`, installed as the logger class when `backupbot` is imported, renames
such keys (`args` -> `extra_args`) instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def safe_extra(extra: Mapping[str, object] | None) -> dict[str, object] | None:
    """`extra` with keys that would collide with `LogRecord` attributes prefixed."""
    if extra is None:
        return None
    return {(f"extra_{k}" if k in RESERVED else k): v for k, v in extra.items()}


class SafeLogger(logging.Logger):
    """A Logger whose `extra=` keys never collide with the record's own attributes."""

    def makeRecord(
        self,
        name: str,
        level: int,
        fn: str,
        lno: int,
        msg: object,
        args: Any,
        exc_info: Any,
        func: str | None = None,
        extra: Mapping[str, object] | None = None,
        sinfo: str | None = None,
    ) -> logging.LogRecord:
        return super().makeRecord(
            name, level, fn, lno, msg, args, exc_info, func, safe_extra(extra), sinfo
        )


def install() -> None:
    """Make loggers created from now on `SafeLogger`s (a no-op if another class is set)."""
    if logging.getLoggerClass() is logging.Logger:
        logging.setLoggerClass(SafeLogger)
