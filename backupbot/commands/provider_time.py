"""The moment a provider restore goes back to: `--to "2026-11-30 14:05"` read in UTC,
in `--tz Europe/Berlin`, or with an offset written in the text (`…+01:00`, `…Z`).

A wall-clock time that does not exist in the zone (the hour skipped when clocks go
forward) or that exists twice (the hour repeated when they go back) is refused with
the two readings, so nobody restores to the wrong side of a DST change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backupbot.commands.restore_model import RESTORE_USAGE
from backupbot.errors import UsageError

_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")


def zone(name: str | None) -> ZoneInfo | None:
    """The IANA zone `name` (None: UTC); refuses an unknown one."""
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"--tz {name[:60]!r} is not a time zone: use an IANA name such as Europe/Berlin "
            "or America/New_York.",
            RESTORE_USAGE,
        ) from None


def parse_point(text: str, tz: str | None = None) -> datetime:
    """`text` as a UTC moment: in `tz` (an IANA name) when given, else in UTC unless the
    text carries its own offset."""
    where = zone(tz)
    value = " ".join(text.split())
    parsed = _parse(value)
    if parsed.tzinfo is not None:
        if where is not None:
            raise UsageError(
                f"--to {value!r} has its own offset; drop it or drop --tz.", RESTORE_USAGE
            )
        return parsed.astimezone(UTC)
    if where is None:
        return parsed.replace(tzinfo=UTC)
    return _in_zone(parsed, where, value)


def _parse(value: str) -> datetime:
    iso = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        return datetime.fromisoformat(iso).replace(microsecond=0)
    except ValueError:
        pass
    for fmt in _FORMATS:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise UsageError(
        f'--to {value[:60]!r} is not a time: write it as "YYYY-MM-DD HH:MM" (UTC unless '
        "--tz names a zone, or an offset such as +01:00 is given).",
        RESTORE_USAGE,
    )


def _in_zone(wall: datetime, where: ZoneInfo, text: str) -> datetime:
    """The wall-clock time `wall` in `where`, refusing a skipped or repeated one."""
    early, late = wall.replace(tzinfo=where, fold=0), wall.replace(tzinfo=where, fold=1)
    if early.utcoffset() == late.utcoffset():
        return early.astimezone(UTC)
    first, second = (early.astimezone(UTC), late.astimezone(UTC))
    back = early.replace(tzinfo=None) == early.astimezone(UTC).astimezone(where).replace(
        tzinfo=None
    )
    if back:  # the hour happens twice: clocks went back
        raise UsageError(
            f"{text} happens twice in {where.key} (the clocks go back that night): "
            f'give the offset, e.g. --to "{_offset_text(wall, early.utcoffset())}" '
            f'({_utc(first)}) or --to "{_offset_text(wall, late.utcoffset())}" '
            f"({_utc(second)}), without --tz.",
            RESTORE_USAGE,
        )
    raise UsageError(
        f"{text} does not exist in {where.key} (the clocks skip that hour): read with "
        f"the offset before or after the change it would be {_utc(first)} or "
        f"{_utc(second)}; give the moment you mean in UTC.",
        RESTORE_USAGE,
    )


def _offset_text(wall: datetime, offset: timedelta | None) -> str:
    minutes = int((offset or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{wall:%Y-%m-%d %H:%M}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def in_zone_text(moment: datetime, tz: str | None) -> str | None:
    """`moment` as wall-clock time in `tz` with its abbreviation, for the request."""
    where = zone(tz)
    if where is None:
        return None
    local = moment.astimezone(where)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()} ({where.key})"
