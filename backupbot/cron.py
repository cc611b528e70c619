"""Cron expressions, in one of two forms, turned into APScheduler triggers.

    minute hour day month day-of-week            "0 2 * * *"       02:00:00 every day
    second minute hour day month day-of-week     "30 0 2 * * *"    02:00:30 every day

The 6-field form puts seconds first, as Quartz and croniter's `second_at_beginning` do.
Day-of-week numbers are cron's in both forms: 0 and 7 are Sunday, 1 is Monday, ... 6 is
Saturday. APScheduler 3 counts 0 as Monday (even in `CronTrigger.from_crontab`), so a field
with numbers in it is translated to day names here; a field of names only (`mon-fri`,
`sat,sun`) is passed through as it is. As in APScheduler, day-of-month and day-of-week must
both match ("0 10 1-7 * mon": the first Monday of the month).

Firing times (`fire_after`, `iter_fires`, `window`, `fire_at_or_before`) are worked out and
returned in UTC, whatever the cron's zone: wall-clock arithmetic on a zoned datetime goes
wrong at a DST change (adding a microsecond to the second 02:30 of a fall-back night lands
on the first one again). Across a change the zone's rules hold as APScheduler applies them:
a firing in the hour skipped in spring comes one hour later on the wall clock (02:30 on
Berlin's spring-forward day fires at 03:30 CEST, 01:30 UTC), and one in the hour repeated in
autumn fires at both of its instants.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from apscheduler.triggers.cron import CronTrigger

FORMS = (
    "use 5 fields 'minute hour day month weekday' (e.g. '0 2 * * *') or 6 with seconds "
    "first (e.g. '30 0 2 * * *')"
)

_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron numbering: 0 = Sunday
_APS_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # APScheduler 3's: 0 = Monday
_TICK = timedelta(microseconds=1)
COUNT_CAP = 10_000  # `window` counts firings exactly up to this many (a count is a report)
LOOKBACK = timedelta(days=366 * 30)  # "0 0 29 2 mon" recurs every 28 years at most


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


def fire_after(trigger: CronTrigger, after: datetime) -> datetime | None:
    """The first firing strictly after `after` (an aware time), in UTC; None if none."""
    start = after.astimezone(UTC)
    fire = trigger.get_next_fire_time(None, start + _TICK)
    return fire.astimezone(UTC) if fire is not None else None


def iter_fires(
    trigger: CronTrigger, after: datetime, until: datetime | None = None
) -> Iterator[datetime]:
    """Firings in `(after, until]` (unbounded without `until`), oldest first, in UTC,
    computed one at a time as they are asked for."""
    current = fire_after(trigger, after)
    while current is not None and (until is None or current <= until):
        yield current
        current = fire_after(trigger, current)


def fire_at_or_before(trigger: CronTrigger, at: datetime) -> datetime | None:
    """The newest firing at or before `at`, in UTC; None if there was none in `LOOKBACK`.

    APScheduler only looks forward, so this widens a window back from `at` until it holds
    a firing, then halves the part that can still hold a newer one: some 60 look-ups for
    any cron, never one per firing (a per-second cron over a month is 2.6 million).
    """
    at = at.astimezone(UTC)
    span = timedelta(seconds=1)
    while True:
        first = fire_after(trigger, at - span)
        if first is not None and first <= at:
            break
        if span >= LOOKBACK:
            return None
        span *= 2
    # `lo` is a firing; the newest firing at or before `at` lies in [lo, hi].
    lo, hi = first, at
    while True:
        following = fire_after(trigger, lo)
        if following is None or following > hi:
            return lo
        lo = following
        middle = lo + (hi - lo) / 2
        probe = fire_after(trigger, middle)
        if probe is not None and probe <= hi:
            lo = probe
        else:
            hi = middle  # nothing fires in (middle, hi]


@dataclass(frozen=True)
class Window:
    """The firings in a window `(after, until]`: the oldest, the newest and how many."""

    first: datetime | None
    last: datetime | None
    count: int  # exact when `count_exact`; else at least this many
    count_exact: bool = True


def window(
    trigger: CronTrigger, after: datetime, until: datetime, count_cap: int = COUNT_CAP
) -> Window:
    """The oldest and newest firing in `(after, until]` (exact for any window) and their
    number, counted up to `count_cap`."""
    first = fire_after(trigger, after)
    if first is None or first > until:
        return Window(None, None, 0)
    last = fire_at_or_before(trigger, until)
    assert last is not None and last >= first
    count = 0
    for fire in iter_fires(trigger, after, last):
        count += 1
        if count >= count_cap and fire < last:
            return Window(first, last, count, count_exact=False)
    return Window(first, last, count)


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
