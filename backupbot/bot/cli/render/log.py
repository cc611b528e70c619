"""`backupbot log` and `log verify`: incident records and the hash-chain check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from backupbot.bot.cli.render.phrase import render
from backupbot.commands import humanize
from backupbot.phrases import from_json
from backupbot.storage.incident_chain import ChainCheck
from backupbot.storage.incidents import Incident


def incident_line(i: Incident) -> str:
    """When, who, what, which database and backup, and the error or reason if any."""
    db = f" {i.database}" if i.database else ""
    bid = f" [{i.backup_id}]" if i.backup_id else ""
    detail = i.details.get("error") or i.details.get("reason") or ""
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
