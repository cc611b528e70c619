"""`backupbot log`, `log verify` and the audit export (`log --format jsonl|csv`):
incident records and the hash-chain check."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC
from typing import Any

from backupbot.bot.cli.render.phrase import render
from backupbot.commands import humanize
from backupbot.commands.operation_notes import note_detail
from backupbot.phrases import from_json
from backupbot.storage.incident_chain import ChainCheck
from backupbot.storage.incidents import ChainedIncident, Incident


def incident_line(i: Incident) -> str:
    """When, who, what, which database and backup, and the error or reason if any (a
    note: its kind and text)."""
    db = f" {i.database}" if i.database else ""
    bid = f" [{i.backup_id}]" if i.backup_id else ""
    detail = note_detail(i) or i.details.get("error") or i.details.get("reason") or ""
    if "phrase" in i.details:  # worded for the terminal: commands as `backupbot ...`
        detail = render(from_json(i.details["phrase"]))
    line = f"{humanize.utc(i.at)}  {i.actor:<16} {i.action}{db} {i.outcome}{bid} {detail}"
    return line.rstrip()


def log_lines(records: Sequence[Incident]) -> list[str]:
    return [incident_line(i) for i in records]


def verify_line(check: ChainCheck) -> str:
    if check.intact:
        return f"incident log: {check.records} records, hash chain intact"
    return (
        f"incident log: hash chain BROKEN at record {check.first_broken_id}: "
        f"{check.problem}; the {check.records} records before it are intact"
    )


def verify_json(check: ChainCheck) -> dict[str, Any]:
    return {"intact": check.intact, **asdict(check)}


# The export's columns: the record as stored, chain fields included, so an auditor can
# recompute each hash (`storage/incident_chain.py`).
EXPORT_FIELDS = (
    "id",
    "at",
    "actor",
    "action",
    "outcome",
    "database",
    "backup_id",
    "details",
    "prev_hash",
    "hash",
)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def export_record(r: ChainedIncident) -> dict[str, Any]:
    """One record for the export: `at` in ISO 8601 UTC with its offset, to the microsecond."""
    i = r.incident
    return {
        "id": i.id,
        "at": i.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": i.actor,
        "action": i.action,
        "outcome": i.outcome,
        "database": i.database,
        "backup_id": i.backup_id,
        "details": i.details,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    }


def jsonl_line(r: ChainedIncident) -> str:
    return json.dumps(export_record(r), ensure_ascii=False, sort_keys=False)


def csv_row(r: ChainedIncident) -> dict[str, str]:
    """One CSV row: details as JSON text, empty for a missing value, and a `'` before a
    value a spreadsheet would take for a formula."""
    row: dict[str, str] = {}
    for key, value in export_record(r).items():
        if key == "details":
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        text = "" if value is None else str(value)
        row[key] = f"'{text}" if text.startswith(FORMULA_START) else text
    return row


def verification_json(check: ChainCheck, exported: int) -> dict[str, Any]:
    """The export's last jsonl line: the chain walk `log verify` does."""
    return {
        "verification": {
            "ok": check.intact,
            "records": check.records,
            "first_broken": check.first_broken_id,
            "problem": check.problem,
            "exported": exported,
        }
    }


def export_summary(exported: int, fmt: str, where: str) -> str:
    return f"incident log export: {exported} record(s) as {fmt} to {where}"
