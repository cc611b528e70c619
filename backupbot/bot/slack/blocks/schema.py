"""The schema differences a failed restore or drill verification found, as bullet lines
beside the tables whose rows differ (wording from `commands/schema_compare.py`, escaped)."""

from __future__ import annotations

from typing import Any

from backupbot.bot.slack.kit import render
from backupbot.commands.schema_compare import SchemaDifference

MAX_SCHEMA_LINES = 8


def schema_lines(result: dict[str, Any]) -> list[str]:
    """`• index public.orders_customer_idx missing` for each difference recorded in a
    restore's or drill's `result`, the rest counted."""
    found: list[dict[str, Any]] = result.get("schema_differences") or []
    if not found:
        return []
    total = int(result.get("schema_differences_total") or len(found))
    shown = found[:MAX_SCHEMA_LINES]
    lines = ["*Schema differences from the backup:*"]
    lines += [f"• {render(SchemaDifference.from_record(d).phrase())}" for d in shown]
    if total > len(shown):
        lines.append(f"…and {total - len(shown)} more difference(s)")
    return lines


def schema_verdict(result: dict[str, Any]) -> str:
    """What a passed verification said of the schema, to follow "… match the backup"."""
    return {
        "ok": "; so does the schema",
        "not recorded": "; schema not checked (the backup predates schema fingerprints)",
    }.get(str(result.get("schema") or ""), "")
