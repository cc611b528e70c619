"""The trend chart as PNG bytes: stored size and backup duration over 90 days (two
panels), and the drills' recovery times against the RTO target line (a third).

matplotlib (Agg, no display) is imported here, lazily, when a chart is drawn: start-up
does not pay for it. The PNG's text chunks say what was plotted (`backupbot:backups`,
`backupbot:drills`), so a reader (and the tests) can check the counts without OCR.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from backupbot.commands.trends import ChartData

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 7.5, 100  # 800 x 750 pixels


@dataclass(frozen=True)
class Chart:
    png: bytes
    backups: int  # points in the size and duration panels
    drills: int  # drill points against the RTO line
    filename: str
    title: str

    @property
    def comment(self) -> str:
        """The plain-text caption posted with the chart."""
        return (
            f"{self.title}: {self.backups} stored backup(s) and {self.drills} restore "
            "drill(s) in the last 90 days."
        )


def render_chart(data: ChartData) -> Chart:
    """Draw `data`; deterministic for the same data (no timestamps in the file)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    size_ax, time_ax, drill_ax = fig.subplots(3, 1, sharex=True)
    when = [p.at for p in data.backups]
    size_ax.plot(when, [p.stored_size / 2**20 for p in data.backups], marker="o", ms=3)
    size_ax.set_ylabel("stored size (MiB)")
    time_ax.plot(when, [p.seconds for p in data.backups], marker="o", ms=3, color="tab:orange")
    time_ax.set_ylabel("backup duration (s)")
    passed = [d for d in data.drills if d.passed]
    failed = [d for d in data.drills if not d.passed]
    drill_ax.scatter([d.at for d in passed], [d.seconds / 60 for d in passed], label="passed")
    drill_ax.scatter(
        [d.at for d in failed], [d.seconds / 60 for d in failed], color="tab:red", label="failed"
    )
    drill_ax.axhline(data.rto_minutes, color="tab:red", linestyle="--", label="RTO target")
    drill_ax.set_ylabel("drill recovery (min)")
    drill_ax.legend(loc="upper left", fontsize="small")
    drill_ax.set_xlim(data.since, data.until)
    for ax in (size_ax, time_ax, drill_ax):
        ax.grid(alpha=0.3)
    title = f"{data.database}: backups and restore drills"
    fig.suptitle(f"{title}, {data.since:%Y-%m-%d} to {data.until:%Y-%m-%d} (UTC)")
    fig.autofmt_xdate()
    out = io.BytesIO()
    metadata = {
        "Software": None,  # no matplotlib version: the bytes depend on the data only
        "backupbot:database": data.database,
        "backupbot:backups": str(len(data.backups)),
        "backupbot:drills": str(len(data.drills)),
    }
    fig.savefig(out, format="png", metadata=metadata)
    return Chart(
        png=out.getvalue(),
        backups=len(data.backups),
        drills=len(data.drills),
        filename=f"backupbot-{data.database}-{data.until:%Y%m%d}.png",
        title=title,
    )
