"""The line a protected in-place restore request shows its approvers: when the backup
was last restored successfully in a drill or on a staging target, or a warning that it
never was (the runbook: "Always test restore in staging before production")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backupbot.bot.slack.kit import code
from backupbot.commands import humanize


def _how(fact: dict[str, Any]) -> str:
    if fact.get("how") == "drill":
        return "in a restore drill"
    return f"on the target {code(fact.get('target') or '?')}"


def tested_lines(tested: dict[str, Any] | None, backup_id: str) -> list[str]:
    """Nothing for requests that are not protected in-place ones (`tested` is None)."""
    if tested is None:
        return []
    same = tested.get("backup")
    if same:
        at = humanize.utc(datetime.fromisoformat(same["at"]))
        return [
            f":white_check_mark: Backup {code(backup_id)} was restored and verified "
            f"{_how(same)} on {at}."
        ]
    line = f":warning: *Backup {code(backup_id)} has never been restored in staging or a drill.*"
    other = tested.get("any")
    if other:
        at = humanize.utc(datetime.fromisoformat(other["at"]))
        line += (
            f" The last tested backup of this database is {code(other['backup_id'])}, "
            f"{_how(other)} on {at}."
        )
    else:
        line += " No backup of this database has been test-restored yet."
    return [line]
