"""Plain-language numbers and times shared by the Slack renderer and the CLI."""

from __future__ import annotations

from datetime import datetime, timedelta


def size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def duration(d: timedelta | None) -> str:
    if d is None:
        return "?"
    if d.total_seconds() < 10:
        return f"{d.total_seconds():.1f} s"
    seconds = round(d.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def age(then: datetime, now: datetime) -> str:
    seconds = int((now - then).total_seconds())
    if seconds < 90:
        return "just now"
    minutes = seconds // 60
    if minutes < 90:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h ago"
    return f"{hours // 24} days ago"


def utc(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC") if t else "?"


def who(actor: str) -> str:
    """A Slack user id as a mention (Slack shows the name), any other actor
    (`cli:alice`, `scheduler`) as code."""
    return f"<@{actor}>" if actor[:1] in ("U", "W") and ":" not in actor else f"`{actor}`"
