"""Plain-language numbers and times shared by the Slack renderer and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


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
    """`t` converted to UTC and labelled so: "2026-12-03 02:00 UTC", with the seconds when
    they are not zero ("2026-12-03 02:00:30 UTC"); "?" for None.

    A naive datetime raises ValueError: every time in backupbot is timezone-aware (the
    clock and the state database give UTC), so a naive one is a bug, not a UTC time.
    """
    if t is None:
        return "?"
    return f"{_clock(_aware(t).astimezone(UTC), date=True)} UTC"


def zoned(t: datetime | None, zone: str) -> str:
    """`t` on the wall clock of `zone` (a schedule's time zone), labelled with the zone,
    and in UTC: "2026-12-03 03:00 Europe/Berlin (02:00 UTC)"; the UTC date is shown when
    it differs ("2026-12-03 00:30 Europe/Berlin (2026-12-02 23:30 UTC)"). Just `utc(t)`
    for a UTC zone, "?" for None."""
    if t is None:
        return "?"
    instant = _aware(t).astimezone(UTC)
    if zone in _UTC_NAMES:
        return utc(instant)
    local = instant.astimezone(ZoneInfo(zone))
    in_utc = _clock(instant, date=instant.date() != local.date())
    return f"{_clock(local, date=True)} {zone} ({in_utc} UTC)"


_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Zulu", "Etc/Zulu", "Universal"})


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(
            f"naive datetime {t.isoformat()} has no time zone; backupbot uses aware times"
        )
    return t


def _clock(t: datetime, *, date: bool) -> str:
    shown = t.strftime("%H:%M:%S" if t.second else "%H:%M")
    return f"{t.strftime('%Y-%m-%d')} {shown}" if date else shown


def is_slack_user(actor: str) -> bool:
    """A Slack user id (`U0ALICE`), as opposed to `cli:alice`, `scheduler` or `system`."""
    return actor[:1] in ("U", "W") and ":" not in actor
