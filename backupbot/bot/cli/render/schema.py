"""The schema check of a restore or drill in a terminal: the verdict and each difference."""

from __future__ import annotations

from typing import Any

from backupbot.bot.cli.render.phrase import render
from backupbot.commands.schema_compare import FAILED, SchemaDifference


def schema_status(result: dict[str, Any]) -> str | None:
    """ok, failed or not recorded; None for a restore that never got to verification."""
    if result.get("schema_differences"):
        return FAILED
    return result.get("schema")


def difference_lines(result: dict[str, Any], indent: str = "") -> list[str]:
    """`schema: index public.orders_customer_idx missing`, one line per difference kept."""
    return [
        f"{indent}schema: {render(SchemaDifference.from_record(d).phrase())}"
        for d in result.get("schema_differences") or []
    ]


def schema_json(result: dict[str, Any]) -> dict[str, Any]:
    """The schema facts for scripts: the verdict and the differences' wording."""
    return {
        "schema": schema_status(result),
        "schema_differences": [
            str(d.get("text", "")) for d in result.get("schema_differences") or []
        ],
    }
