"""Sparklines and the trend chart's series and PNG (unit tests)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from PIL import Image

from backupbot.bot.charts import render_chart
from backupbot.bot.sparkline import BARS, sparkline, trend_lines
from backupbot.commands.trends import BackupPoint, ChartData, DrillPoint, chart_data, trend
from backupbot.storage.catalog import BackupRecord

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _record(days_ago: float, size: int | None, seconds: float | None) -> BackupRecord:
    started = NOW - timedelta(days=days_ago)
    return BackupRecord(
        id=f"b{days_ago}", database="app", status="succeeded", actor="U1", label=None,
        started_at=started, heartbeat_at=started,
        finished_at=None if seconds is None else started + timedelta(seconds=seconds),
        progress_bytes=0, store="local", artifact_key=None, manifest_key=None, location=None,
        raw_size=None, stored_size=size, sha256=None, compression=None, server_version=None,
        pg_dump_version=None, manifest=None, error=None,
    )  # fmt: skip


def test_sparkline_empty_is_empty() -> None:
    assert sparkline([]) == ""


def test_sparkline_one_value_and_constant_series_are_middle_bars() -> None:
    assert sparkline([5.0]) == "▄"
    assert sparkline([3.0, 3.0, 3.0]) == "▄▄▄"


def test_sparkline_scales_from_lowest_to_highest() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == BARS
    assert sparkline([10, 1000]) == "▁█"
    line = sparkline([100, 150, 200])
    assert line[0] == "▁" and line[-1] == "█" and line[1] in "▄▅"


def test_trend_keeps_the_newest_points_of_stored_backups() -> None:
    records = [_record(40 - i, 1000 + i, 10 + i) for i in range(40)] + [_record(0, None, None)]
    t = trend(records, points=30)
    assert len(t.sizes) == len(t.durations) == 30
    assert t.sizes[0] == 1010 and t.sizes[-1] == 1039
    assert t.durations[-1] == 49
    sizes, times = trend_lines(t)
    assert sizes.startswith(sparkline(t.sizes)) and "(30 backups)" in sizes
    assert times.startswith(sparkline(t.durations)) and times.endswith("49 s")
    assert trend_lines(trend([])) == ("", "")


def test_chart_data_keeps_the_90_day_window() -> None:
    records = [_record(d, 2**20 * d, 5) for d in (200, 91, 89, 10, 0)]
    data = chart_data("app", NOW, records, [], 30)
    assert [p.stored_size for p in data.backups] == [2**20 * d for d in (89, 10, 0)]
    assert data.since == NOW - timedelta(days=90)


def test_chart_png_decodes_and_says_what_it_plotted() -> None:
    data = ChartData(
        "app", NOW - timedelta(days=90), NOW, 30,
        [BackupPoint(NOW - timedelta(days=d), 2**20 + d, 3.0 + d) for d in range(12)],
        [DrillPoint(NOW - timedelta(days=7), 95.0, True), DrillPoint(NOW, 2400.0, False)],
    )  # fmt: skip
    chart = render_chart(data)
    image = Image.open(io.BytesIO(chart.png))
    image.load()
    assert image.format == "PNG" and image.size == (800, 750)
    assert image.text["backupbot:backups"] == "12" and image.text["backupbot:drills"] == "2"
    assert (chart.backups, chart.drills) == (12, 2)
    assert "12 stored backup(s) and 2 restore drill(s)" in chart.comment
    assert render_chart(data).png == chart.png  # deterministic
