"""`backupbot status`: where each database stands, and its trend charts. Apart from
`actions.py`, so the status path (`bot/status_composition.py`) imports only what it reads."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Protocol

from backupbot.bot.charts import render_chart
from backupbot.bot.cli.common import print_json
from backupbot.bot.cli.render import status as status_text
from backupbot.commands import registry as r
from backupbot.commands.status_service import StatusService


class HasStatus(Protocol):
    """`Services`, or `StatusServices` (what status alone builds)."""

    @property
    def status(self) -> StatusService: ...


def status(services: HasStatus, request: r.Status, as_json: bool) -> int:
    """Where each database stands; exit 1 if any needs attention."""
    report = services.status.report(request.database)
    if request.chart_file:
        write_charts(services.status, request.database, request.chart_file)
    if as_json:
        print_json([status_text.status_json(s) for s in report])
    else:
        print("\n".join(status_text.status_lines(report, services.status.overall())))
    return 0 if all(s.healthy for s in report) else 1


def write_charts(status: StatusService, database: str | None, path: str) -> None:
    """`status --chart FILE`: the trend chart as PNG; with several databases one file
    each, FILE's name with the database before the suffix."""
    charts = status.charts(database)
    for data in charts:
        target = Path(path)
        if len(charts) > 1:
            target = target.with_name(f"{target.stem}-{data.database}{target.suffix or '.png'}")
        chart = render_chart(data)
        target.write_bytes(chart.png)
        print(f"wrote {target}: {chart.comment}", file=sys.stderr)
