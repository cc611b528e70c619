"""Sparklines: a series as a row of block characters (plain text, no markup), for the
Slack and CLI renderers alike."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from backupbot.commands import humanize
from backupbot.commands.trends import Trend

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    """One bar per value, scaled from the series' lowest to its highest; a constant series
    is a row of middle bars; no values, the empty string."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return BARS[len(BARS) // 2 - 1] * len(values)
    top = len(BARS) - 1
    return "".join(BARS[round((v - low) / (high - low) * top)] for v in values)


def trend_lines(t: Trend) -> tuple[str, str]:
    """(sizes, durations) of a status trend, each a sparkline with its range, plain text:
    `▁▃█ 1.0 MB → 1.4 MB (12 backups)`."""
    if not t:
        return "", ""
    n = len(t.sizes)
    sizes = (
        f"{sparkline(t.sizes)} {humanize.size(int(t.sizes[0]))} → "
        f"{humanize.size(int(t.sizes[-1]))} ({n} backup{'s' if n != 1 else ''})"
    )
    first, last = (timedelta(seconds=s) for s in (t.durations[0], t.durations[-1]))
    times = f"{sparkline(t.durations)} {humanize.duration(first)} → {humanize.duration(last)}"
    return sizes, times
