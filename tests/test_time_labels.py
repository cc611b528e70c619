"""Times as people read them: converted to UTC before they are labelled UTC, a schedule's
time on its own zone's wall clock with the zone named, and the seconds kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from backupbot.commands import humanize

BERLIN = ZoneInfo("Europe/Berlin")


def test_a_berlin_time_is_converted_before_it_is_labelled_utc() -> None:
    winter = datetime(2026, 12, 3, 3, 0, tzinfo=BERLIN)  # CET, UTC+1
    summer = datetime(2026, 6, 3, 3, 0, tzinfo=BERLIN)  # CEST, UTC+2

    assert humanize.utc(winter) == "2026-12-03 02:00 UTC"
    assert humanize.utc(summer) == "2026-06-03 01:00 UTC"
    assert humanize.utc(datetime(2026, 12, 3, 0, 30, tzinfo=BERLIN)) == "2026-12-02 23:30 UTC"
    assert humanize.utc(datetime(2026, 12, 3, 3, 0, tzinfo=timezone(timedelta(hours=-5)))) == (
        "2026-12-03 08:00 UTC"
    )


def test_seconds_are_shown_when_there_are_any() -> None:
    assert humanize.utc(datetime(2026, 12, 3, 2, 0, 30, tzinfo=UTC)) == "2026-12-03 02:00:30 UTC"
    assert humanize.utc(datetime(2026, 12, 3, 2, 0, 0, 999, tzinfo=UTC)) == "2026-12-03 02:00 UTC"
    assert humanize.utc(None) == "?"


def test_a_naive_time_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        humanize.utc(datetime(2026, 12, 3, 2, 0))
    with pytest.raises(ValueError, match="no time zone"):
        humanize.zoned(datetime(2026, 12, 3, 2, 0), "Europe/Berlin")


def test_a_schedules_time_is_shown_in_its_zone_and_in_utc() -> None:
    fire = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)

    assert humanize.zoned(fire, "Europe/Berlin") == "2026-12-03 03:00 Europe/Berlin (02:00 UTC)"
    assert humanize.zoned(fire.astimezone(BERLIN), "Europe/Berlin") == (
        "2026-12-03 03:00 Europe/Berlin (02:00 UTC)"
    )
    assert humanize.zoned(fire, "America/New_York") == (
        "2026-12-02 21:00 America/New_York (2026-12-03 02:00 UTC)"  # the UTC date differs
    )
    assert humanize.zoned(fire, "UTC") == "2026-12-03 02:00 UTC"
    assert humanize.zoned(datetime(2026, 12, 3, 2, 0, 30, tzinfo=UTC), "Europe/Berlin") == (
        "2026-12-03 03:00:30 Europe/Berlin (02:00:30 UTC)"
    )
    assert humanize.zoned(None, "Europe/Berlin") == "?"


def test_the_two_instants_of_a_repeated_hour_read_differently() -> None:
    # 25 October 2026, Berlin: 03:00 CEST becomes 02:00 CET; 02:30 happens twice
    first, second = (
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    )

    assert humanize.zoned(first, "Europe/Berlin") == "2026-10-25 02:30 Europe/Berlin (00:30 UTC)"
    assert humanize.zoned(second, "Europe/Berlin") == "2026-10-25 02:30 Europe/Berlin (01:30 UTC)"
