"""Block Kit for retention: the dry run (`/backup retention`) and the note after a run.

Pure functions from `RetentionPlan` / `RetentionReport` to `Message`. Long lists are cut
to a few lines per database with "…and N more", so any catalog fits Slack's limits.
"""

from __future__ import annotations

from collections.abc import Sequence

from backupbot.bot.slack.kit import (
    MAX_BLOCKS,
    MAX_SECTION_TEXT,
    Block,
    Message,
    clip,
    code,
    context,
    esc,
    mention,
    section,
)
from backupbot.commands import humanize
from backupbot.commands.retention_plan import (
    WITHIN_POLICY,
    Decision,
    RetentionPlan,
    RetentionReport,
)

MAX_LINES = 8  # backups listed per database and kind before "…and N more"
_FEWER = (MAX_LINES, 4, 2, 0)  # fewer lines per kind while a section is too long
MAX_DATABASES = 20  # database sections in one message


def _backup_line(d: Decision) -> str:
    b = d.backup
    label = ""
    if b.label and b.label not in d.reason:
        label = f", label {code(clip(b.label, 40))}"
    return (
        f"• {code(b.id)} {b.started_at:%Y-%m-%d} ({d.age_days} days old, "
        f"{humanize.size(b.stored_size)}{label}): {esc(clip(d.reason, 160))}"
    )


def _listed(decisions: Sequence[Decision], limit: int = MAX_LINES) -> list[str]:
    lines = [_backup_line(d) for d in decisions[:limit]]
    if len(decisions) > limit:
        lines.append(f"…and {len(decisions) - limit} more")
    return lines


def _database_section(plan: RetentionPlan, name: str, days: int) -> Block:
    mine = plan.for_database(name)
    head = f"*{code(name)}* · keep {days} days · {len(mine)} verified backup(s)"
    if not mine:
        return section(f"{head}\nNo verified backups yet: nothing to delete.")
    doomed = [d for d in mine if d.delete]
    on_purpose = [d for d in mine if not d.delete and d.rule != WITHIN_POLICY]
    within = [d for d in mine if d.rule == WITHIN_POLICY]
    for limit in _FEWER:
        lines = [head]
        if doomed:
            size = humanize.size(sum(d.backup.stored_size or 0 for d in doomed))
            lines.append(f":wastebasket: *Would delete {len(doomed)}* ({size}):")
            lines += _listed(doomed, limit)
        else:
            lines.append(":white_check_mark: Nothing to delete.")
        if on_purpose:
            lines.append(f":lock: *Kept although older than {days} days* ({len(on_purpose)}):")
            lines += _listed(on_purpose, limit)
        if within:
            oldest = min(d.backup.started_at for d in within)
            lines.append(
                f":file_folder: {len(within)} within {days} days (oldest {oldest:%Y-%m-%d}), kept."
            )
        text = "\n".join(lines)
        if len(text) <= MAX_SECTION_TEXT:
            break
    return section(text)


def retention_dry_run(plan: RetentionPlan) -> Message:
    """What the next retention run would delete and keep, and why; nothing is deleted."""
    doomed = plan.to_delete
    if doomed:
        dbs = sorted({d.backup.database for d in doomed})
        summary = (
            f"The next retention run would delete {len(doomed)} backup(s) "
            f"({humanize.size(plan.bytes_to_free)}) of {', '.join(map(code, dbs))}."
        )
    else:
        summary = "The next retention run would delete nothing."
    blocks: list[Block] = [
        section(f":broom: *Retention dry run* · {summary} Nothing was deleted now.")
    ]
    for i, p in enumerate(plan.policies):
        if i == MAX_DATABASES:
            rest = len(plan.policies) - i
            blocks.append(context(f"{rest} more database(s); ask for one: `/backup retention DB`."))
            break
        blocks.append(_database_section(plan, p.name, p.retention_days))
    if plan.unconfigured:
        names = ", ".join(f"{code(n)} ({c})" for n, c in sorted(plan.unconfigured.items()))
        blocks.append(
            context(
                f":information_source: Backups of databases that are not configured are left "
                f"alone: {names}. Add a database to the configuration to apply retention to it."
            )
        )
    labels = ", ".join(f"{code(label)}" for label in plan.keep_labels) or "none"
    blocks.append(
        context(
            f"Never deleted: the newest verified backup of each database. Labels {labels} "
            f"are kept {plan.keep_labeled_days} days. Only the bot's own catalogued artifacts "
            "and manifests are deleted; nothing else in the store is touched."
        )
    )
    return Message(f"Retention dry run: {summary}", blocks[:MAX_BLOCKS])


def retention_summary(report: RetentionReport) -> Message | None:
    """A channel note after a run that deleted or failed to delete something; else None."""
    if not report.did_something:
        return None
    blocks: list[Block] = []
    text_parts: list[str] = []
    if report.deleted:
        per_db: dict[str, int] = {}
        for d in report.deleted:
            per_db[d.backup.database] = per_db.get(d.backup.database, 0) + 1
        where = ", ".join(f"{code(n)} {c}" for n, c in per_db.items())
        head = (
            f":broom: *Retention deleted {len(report.deleted)} backup(s)* "
            f"(freed {humanize.size(report.freed_bytes)}): {where}"
        )
        blocks.append(section("\n".join([head, *_listed(report.deleted, 10)])))
        text_parts.append(
            f"Retention deleted {len(report.deleted)} backup(s), freed "
            f"{humanize.size(report.freed_bytes)}."
        )
    if report.failed:
        lines = [
            f":warning: *Retention could not delete {len(report.failed)} backup(s)*; they "
            "were left as they were and the next run tries again:"
        ]
        for f in report.failed[:MAX_LINES]:
            b = f.decision.backup
            lines.append(f"• {code(b.id)} of {code(b.database)}: {esc(clip(f.error, 300))}")
        if len(report.failed) > MAX_LINES:
            lines.append(f"…and {len(report.failed) - MAX_LINES} more")
        blocks.append(section("\n".join(lines)))
        text_parts.append(f"Retention could not delete {len(report.failed)} backup(s).")
    blocks.append(
        context(
            f"by {mention(report.actor)} at {humanize.utc(report.at)} · {report.kept} "
            "verified backup(s) kept · every deletion is in `/backup log`"
        )
    )
    return Message(" ".join(text_parts), blocks)
