"""`backupbot report rto`: the RTO record for auditors as text tables (or JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backupbot.commands import humanize
from backupbot.commands.rto_record import took
from backupbot.commands.rto_report import RtoReport, RtoRow, RtoSummary

DRILL_COLUMNS = (
    "DATABASE",
    "STARTED",
    "RESULT",
    "DURATION",
    "TARGET",
    "WITHIN",
    "REVIEWED BY",
    "REVIEWED AT",
)
SUMMARY_COLUMNS = ("DATABASE", "TARGET", "DRILLS", "PASSED", "FAILED", "MEDIAN", "WORST")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]


def _minutes(minutes: int | None) -> str:
    return "?" if minutes is None else f"{minutes} min"


def _drill_cells(r: RtoRow) -> list[str]:
    return [
        r.database,
        humanize.utc(r.started_at),
        r.result,
        "-" if r.seconds is None else took(r.seconds),
        _minutes(r.target_minutes),
        "yes" if r.within_target else "no",
        r.reviewed_by or "not reviewed",
        "-" if r.reviewed_at is None else humanize.utc(r.reviewed_at),
    ]


def _summary_cells(s: RtoSummary) -> list[str]:
    return [
        s.database,
        _minutes(s.target_minutes),
        str(s.drills),
        str(s.passed),
        str(s.failed),
        "-" if s.median_seconds is None else took(s.median_seconds),
        "-" if s.worst_seconds is None else took(s.worst_seconds),
    ]


def report_lines(report: RtoReport) -> list[str]:
    """The heading, every drill oldest first, then each database's summary."""
    period = f"from {humanize.utc(report.since)} to {humanize.utc(report.at)}"
    lines = [f"RTO record {period}: {len(report.rows)} restore drill(s)", ""]
    if report.rows:
        lines += table(DRILL_COLUMNS, [_drill_cells(r) for r in report.rows])
    else:
        lines.append("No restore drill finished in this period.")
    lines += ["", *table(SUMMARY_COLUMNS, [_summary_cells(s) for s in report.summaries])]
    return lines


def report_json(report: RtoReport) -> dict[str, Any]:
    return report.as_json()
