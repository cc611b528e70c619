"""Render Slack messages as terminal text: what a channel would show, for the demo."""

from __future__ import annotations

import re
from typing import Any

_MENTION = re.compile(r"<([@#])([A-Z0-9]+)>")
_EMOJI = {
    ":white_check_mark:": "[ok]",
    ":x:": "[FAILED]",
    ":warning:": "[!]",
    ":hourglass_flowing_sand:": "[..]",
}


def plain(text: str) -> str:
    for code, word in _EMOJI.items():
        text = text.replace(code, word)
    return _MENTION.sub(r"\1\2", text).replace("*", "")


def render_blocks(blocks: list[dict[str, Any]], indent: str = "  ") -> str:
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "divider":
            lines.append("-" * 60)
        elif kind == "section":
            if "text" in block:
                lines.extend(plain(block["text"]["text"]).splitlines())
            for field in block.get("fields", []):
                lines.append("  " + plain(field["text"]).replace("\n", ": ", 1))
        elif kind == "context":
            lines.extend(plain(e.get("text", "")) for e in block.get("elements", []))
        elif kind == "header":
            lines.append(plain(block["text"]["text"]).upper())
    return "\n".join(indent + line for line in lines)
