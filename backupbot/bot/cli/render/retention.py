"""`backupbot retention`: the dry run and a run's outcome as text lines."""

from __future__ import annotations

from backupbot.commands import humanize
from backupbot.commands.retention_plan import Decision, RetentionPlan, RetentionReport


def _line(d: Decision) -> str:
    b = d.backup
    label = f" [{b.label}]" if b.label else ""
    return (
        f"  {d.action:<6} {b.id}  {humanize.utc(b.started_at)}  {d.age_days:>4} d  "
        f"{humanize.size(b.stored_size):>9}{label}  {d.reason}"
    )


def plan_lines(plan: RetentionPlan) -> list[str]:
    """The dry run as text lines: every backup's decision, per database."""
    lines: list[str] = []
    for p in plan.policies:
        mine = plan.for_database(p.name)
        doomed = sum(1 for d in mine if d.delete)
        lines.append(
            f"{p.name}: keep {p.retention_days} days; {len(mine)} verified backup(s), "
            f"would delete {doomed}"
        )
        lines.extend(_line(d) for d in mine)
    for name, count in plan.unconfigured.items():
        lines.append(f"{name}: not configured; its {count} verified backup(s) are left alone")
    lines.append(
        f"would delete {len(plan.to_delete)} backup(s), {humanize.size(plan.bytes_to_free)}; "
        f"labels {', '.join(plan.keep_labels) or '(none)'} are kept {plan.keep_labeled_days} "
        "days; nothing was deleted (dry run)"
    )
    return lines


def report_lines(report: RetentionReport) -> list[str]:
    """A run's outcome as text lines."""
    lines = [
        f"deleted {d.backup.id} ({d.backup.database}, {d.age_days} days old, "
        f"{humanize.size(d.backup.stored_size)}): {d.reason}"
        for d in report.deleted
    ]
    lines += [
        f"FAILED to delete {f.decision.backup.id} ({f.decision.backup.database}): {f.error} "
        "The backup was left as it was; the next run tries again."
        for f in report.failed
    ]
    lines += [
        f"kept {d.backup.id} ({d.backup.database}, {d.age_days} days old): {d.reason}"
        for d in report.locked
    ]
    lines.append(
        f"retention: deleted {len(report.deleted)}, failed {len(report.failed)}, kept "
        f"{report.kept}; freed {humanize.size(report.freed_bytes)}"
    )
    return lines
