"""`backupbot log --since/--until/--format/--output`: the incident log over a time range,
as text, or exported for auditors as jsonl or csv with the hash-chain check.

Records are streamed oldest first from the state database in pages; nothing holds the
whole log. With `--output FILE` the export is written to a temporary file beside FILE
and renamed over it when complete, so a failed export leaves no partial file. An export
is recorded as `log.exported` (range, format, count; never its contents).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from backupbot.bot.cli.render import log as log_text
from backupbot.bot.services import Services
from backupbot.commands import registry as r
from backupbot.errors import UsageError
from backupbot.storage.incidents import ChainedIncident, Incident

FORMATS = ("jsonl", "csv")


@dataclass(frozen=True)
class LogRange:
    """What `log` was asked for beyond the newest n: a time range, a format, a file."""

    since: datetime | None
    until: datetime | None
    fmt: str | None
    output: Path | None

    def facts(self) -> dict[str, str | None]:
        return {
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "format": self.fmt,
            "output": str(self.output) if self.output else "stdout",
        }


def wants_range(request: r.Log) -> bool:
    return any((request.since, request.until, request.export_format, request.output))


def parse_when(text: str, flag: str) -> datetime:
    """An ISO date (00:00 UTC) or date-time (UTC unless it carries an offset)."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{flag} {text[:40]!r} is not an ISO date or date-time: give e.g. 2026-11-01 "
            "(00:00 UTC) or 2026-11-01T12:30:00+01:00 (UTC when no offset is given)."
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_range(request: r.Log, as_json: bool) -> LogRange:
    """The range, format and file asked for; `UsageError` for anything that does not fit."""
    if request.check == "verify":
        raise UsageError(
            "log verify walks the whole hash chain and takes no --since, --until, --format "
            "or --output; an export (--format) includes the same check."
        )
    fmt = request.export_format
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"--format must be jsonl or csv, not {fmt[:20]!r}.")
    if fmt is not None and as_json:
        raise UsageError("Choose one of --json and --format (--format jsonl: one JSON per line).")
    since = None if request.since is None else parse_when(request.since, "--since")
    until = None if request.until is None else parse_when(request.until, "--until")
    if since is not None and until is not None and until <= since:
        raise UsageError("--until must be later than --since (--since is inclusive, --until not).")
    output = None if request.output is None else Path(request.output).expanduser().absolute()
    if output is not None and output.is_dir():
        raise UsageError(f"--output {output} is a directory; name a file.")
    return LogRange(since, until, fmt, output)


@contextlib.contextmanager
def _opened(path: Path | None) -> Iterator[TextIO]:
    """stdout, or a temporary file beside `path` renamed over it when the block ends
    without an error (removed otherwise)."""
    if path is None:
        yield sys.stdout
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"Cannot write --output {path}: {reason}.") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def log_range(services: Services, request: r.Log, as_json: bool, actor: str) -> int:
    """The records in range as text (or `--json`), or the export with its chain check;
    exit 1 when an export finds the chain broken."""
    wanted = parse_range(request, as_json)
    records = services.incidents.in_range(wanted.since, wanted.until)
    with _opened(wanted.output) as out:
        if wanted.fmt is None:
            _show(out, (c.incident for c in records), as_json)
            return 0
        count = _export(out, records, wanted.fmt)
        check = services.incidents.verify()
        if wanted.fmt == "jsonl":
            out.write(json.dumps(log_text.verification_json(check, count)) + "\n")
    services.incidents.record(
        at=services.clock.now(),
        actor=actor,
        action="log.exported",
        outcome="ok",
        details={**wanted.facts(), "count": count, "chain_intact": check.intact},
    )
    where = str(wanted.output) if wanted.output else "stdout"
    print(log_text.export_summary(count, wanted.fmt, where), file=sys.stderr)
    print(log_text.verify_line(check), file=sys.stderr)
    return 0 if check.intact else 1


def _export(out: TextIO, records: Iterator[ChainedIncident], fmt: str) -> int:
    """Write each record as a jsonl line or a csv row (after the header); the count."""
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=log_text.EXPORT_FIELDS)
        writer.writeheader()
        for c in records:
            writer.writerow(log_text.csv_row(c))
            count += 1
        return count
    for c in records:
        out.write(log_text.jsonl_line(c) + "\n")
        count += 1
    return count


def _show(out: TextIO, incidents: Iterator[Incident], as_json: bool) -> None:
    """The records as `log` shows them (oldest first), or as a JSON list, streamed."""
    if not as_json:
        for i in incidents:
            out.write(log_text.incident_line(i) + "\n")
        return
    out.write("[")
    for n, i in enumerate(incidents):
        out.write(("," if n else "") + "\n" + json.dumps(i.as_json(), indent=2))
    out.write("\n]\n")
