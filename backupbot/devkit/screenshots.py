"""Pictures for the README, taken from what the Slack stand-in recorded: the App Home view
the bot published (drawn as the console renders Block Kit: sections, fields, context and
buttons as text, not by Slack's own client) and the trend chart PNG the bot uploaded with
`files_upload_v2`, saved as it was uploaded. `make demo` writes both into its directory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from backupbot.devkit.console import Names, render_message

WIDTH_CHARS = 100
_EMOJI = {"✅": "[ok]", "⚠️": "[!]", "⚠": "[!]", "🚨": "[alert]", "📋": "[checklist]"}


def _drawable(line: str) -> str:
    """The line without glyphs the monospace font lacks (emoji), clipped to the width."""
    for glyph, word in _EMOJI.items():
        line = line.replace(glyph, word)
    line = "".join(ch if ord(ch) < 0x2600 or 0x2580 <= ord(ch) <= 0x259F else "·" for ch in line)
    return line if len(line) <= WIDTH_CHARS else line[: WIDTH_CHARS - 1] + "…"


def view_lines(view: Mapping[str, Any], names: Names | None = None) -> list[str]:
    blocks: Sequence[Mapping[str, Any]] = view.get("blocks") or []
    return [_drawable(x) for x in render_message("", blocks, "", names).splitlines()]


def save_view_png(view: Mapping[str, Any], path: Path, names: Names | None = None) -> int:
    """Draw the view's blocks into a PNG at `path`; how many text lines it holds."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    lines = view_lines(view, names) or ["(an empty view)"]
    fig = plt.figure(figsize=(WIDTH_CHARS * 0.075, 0.6 + 0.17 * len(lines)), dpi=110)
    fig.patch.set_facecolor("white")
    fig.text(0.02, 0.99, "App Home (as published to the Slack stand-in)", va="top", weight="bold")
    fig.text(
        0.02,
        0.99 - 0.3 / fig.get_figheight(),
        "\n".join(lines),
        va="top",
        family="DejaVu Sans Mono",
        fontsize=8,
        linespacing=1.35,
    )
    fig.savefig(path, facecolor="white")
    plt.close(fig)
    return len(lines)
