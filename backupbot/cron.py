"""Cron expressions, in one of two forms, turned into APScheduler triggers.

    minute hour day month day-of-week            "0 2 * * *"       02:00:00 every day
    second minute hour day month day-of-week     "30 0 2 * * *"    02:00:30 every day

The 6-field form puts seconds first, as Quartz and croniter's `second_at_beginning` do.
Day-of-week numbers are cron's in both forms: 0 and 7 are Sunday, 1 is Monday, ... 6 is
Saturday. APScheduler 3 counts 0 as Monday (even in `CronTrigger.from_crontab`), so a field
with numbers in it is translated to day names here; a field of names only (`mon-fri`,
`sat,sun`) is passed through as it is. As in APScheduler, day-of-month and day-of-week must
both match ("0 10 1-7 * mon": the first Monday of the month).
"""

from __future__ import annotations

from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger

FORMS = (
    "use 5 fields 'minute hour day month weekday' (e.g. '0 2 * * *') or 6 with seconds "
    "first (e.g. '30 0 2 * * *')"
)

_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron numbering: 0 = Sunday
_APS_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # APScheduler 3's: 0 = Monday


def cron_trigger(expr: str, timezone: tzinfo | str | None = None) -> CronTrigger:
    """The trigger for a 5-field or 6-field (seconds first) cron expression.

    Raises ValueError saying what is wrong with it.
    """
    fields = expr.split()
    if len(fields) == 5:
        second, (minute, hour, day, month, weekday) = None, fields
    elif len(fields) == 6:
        second, minute, hour, day, month, weekday = fields
    else:
        raise ValueError(f"it has {len(fields)} field{'' if len(fields) == 1 else 's'}")
    kwargs: dict[str, str] = {}
    if second is not None:  # left out for 5 fields: the same trigger as from_crontab gives
        kwargs["second"] = second
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_weekdays(weekday),
        timezone=timezone,
        **kwargs,
    )


def check_cron(expr: str) -> str:
    """`expr` if it is a valid cron expression; else ValueError naming both forms."""
    try:
        cron_trigger(expr, "UTC")
    except ValueError as exc:
        raise ValueError(f"not a cron expression ({exc}); {FORMS}") from None
    return expr


def _weekdays(field: str) -> str:
    """A cron day-of-week field in APScheduler's terms: numbers become day names."""
    if not any(ch.isdigit() for ch in field):
        return field  # '*', names and name ranges mean the same to APScheduler
    days: set[int] = set()  # cron numbers, 0 = Sunday
    for part in field.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"day of week {part!r}: the step must be a positive number")
            step = int(step_text)
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            start, end = base.split("-", 1)
            first, last = _day(start), _day(end)
            if last == 0 < first:  # 'sat-sun', '5-0': up to the Sunday that ends the week
                last = 7
            if last < first:
                raise ValueError(f"day of week range {base!r} runs backwards")
        else:
            first = _day(base)
            last = 7 if slash else first  # '1/2': from Monday on, every other day
        days.update(d % 7 for d in range(first, last + 1, step))
    if len(days) == 7:
        return "*"
    return _names(sorted((d - 1) % 7 for d in days))


def _day(token: str) -> int:
    if token.isdigit() and int(token) <= 7:
        return int(token)
    if token.lower() in _CRON_DAYS:
        return _CRON_DAYS.index(token.lower())
    raise ValueError(
        f"day of week {token!r}: use 0-7 (0 and 7 are Sunday, 1 is Monday) or sun, mon, ... sat"
    )


def _names(aps_days: list[int]) -> str:
    """APScheduler day numbers as names, runs of three or more as ranges: 'mon-fri,sun'."""
    runs: list[list[int]] = []
    for d in aps_days:
        if runs and runs[-1][-1] == d - 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    parts: list[str] = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{_APS_DAYS[run[0]]}-{_APS_DAYS[run[-1]]}")
        else:
            parts.extend(_APS_DAYS[d] for d in run)
    return ",".join(parts)
