"""`/backup status`, `/backup log` and `/backup help` messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from backupbot.bot.slack.charts import ChartPost
from backupbot.bot.slack.kit import (
    MAX_BLOCKS,
    MAX_SECTION_TEXT,
    Block,
    Message,
    channel_link,
    clip,
    code,
    context,
    esc,
    fields,
    mention,
    render,
    section,
)
from backupbot.bot.sparkline import trend_lines
from backupbot.commands import humanize
from backupbot.commands.operation_notes import note_detail
from backupbot.commands.registry import Surface, specs
from backupbot.commands.rto_record import rto_phrase, trend_text
from backupbot.commands.status import AlertSummary, BotStatus, ChecklistSummary, DatabaseStatus
from backupbot.storage.incident_chain import ChainCheck
from backupbot.storage.incidents import Incident


def _status_lines(s: DatabaseStatus) -> list[Block]:
    ok, now = s.last_success, s.now
    icon = ":white_check_mark:" if s.healthy else ":warning:"
    if ok:
        last = (
            f"{humanize.age(ok.started_at, now)} ({humanize.utc(ok.started_at)}), "
            f"{humanize.size(ok.stored_size)}, took {humanize.duration(ok.duration)}, "
            f"id {code(ok.id)}"
        )
    else:
        last = "never"
    failure = "none"
    if s.last_failure:
        f = s.last_failure
        failure = f"{humanize.age(f.started_at, now)}, id {code(f.id)}: {esc(f.error)}"
    pairs = [
        ("Last good backup", last),
        ("Last failure", failure),
        ("Backups kept", str(s.kept)),
        ("Provider", render(s.recovery.line(now)) if s.recovery else esc(s.provider)),
    ]
    if s.running:
        pairs.append(
            (
                "Running now",
                f"id {code(s.running.id)} since "
                f"{humanize.age(s.running.started_at, now)} by {mention(s.running.actor)}",
            )
        )
    pairs.append(("Next scheduled backup", esc(s.next_backup_text)))
    pairs.append(("Restore drills", render(rto_phrase(s.rto))))
    if trend := trend_text(s.rto):
        pairs.append(("RTO trend (last 6 drills)", esc(trend)))
    if s.trend:
        sizes, times = trend_lines(s.trend)
        pairs.append(("Size and duration trend", f"{esc(sizes)}\n{esc(times)}"))
    blocks = [section(f"{icon} *{esc(s.name)}*"), fields(pairs[:10])]
    notes = [f":warning: {render(w)}" for w in s.warnings] + [alert_line(a, now) for a in s.alerts]
    if notes:
        blocks.append(section("\n".join(notes)))
    return blocks


def alert_line(alert: AlertSummary, now: datetime) -> str:
    where = f" · {code(alert.database)}" if alert.database else ""
    if alert.acknowledged_by:
        owner = (
            f"acknowledged by {mention(alert.acknowledged_by)} "
            f"{humanize.age(alert.acknowledged_at or alert.opened_at, now)}"
        )
    else:
        owner = "*not acknowledged*"
    return (
        f":rotating_light: Alert{where}: {render(alert.summary)} (open since "
        f"{humanize.age(alert.opened_at, now)}, {owner})"
    )


def checklist_line(checklist: ChecklistSummary | None, now: datetime) -> str:
    if checklist is None:
        return ":clipboard: Monthly checklist: not posted yet this month."
    if checklist.signed_off_by:
        return (
            f":clipboard: Checklist {checklist.period}: signed off by "
            f"{mention(checklist.signed_off_by)} on {humanize.utc(checklist.signed_off_at)}."
        )
    return (
        f":clipboard: Checklist {checklist.period}: *not signed off* "
        f"({checklist.ticked} of {checklist.items} ticked, posted "
        f"{humanize.age(checklist.posted_at, now)})."
    )


def chart_line(posts: Sequence[ChartPost], channel: str) -> str:
    """What became of `--chart`: where the charts are, or why one is not there."""
    if not posts:
        return ":warning: No chart: the bot has no channel to post it in (`slack.channel`)."
    lines = [
        f":bar_chart: Trend chart of {code(p.database)} posted in {channel_link(channel)}."
        if p.posted
        else f":warning: The trend chart of {code(p.database)} could not be posted "
        f"({esc(p.error)}); the status above stands."
        for p in posts
    ]
    return "\n".join(lines)


def status_message(
    statuses: Sequence[DatabaseStatus],
    overall: BotStatus | None = None,
    charts: Sequence[ChartPost] | None = None,
    channel: str = "",
) -> Message:
    worrying = [s.name for s in statuses if not s.healthy]
    summary = (
        f"{len(worrying)} of {len(statuses)} database(s) need attention: "
        f"{', '.join(map(esc, worrying))}."
        if worrying
        else f"All {len(statuses)} database(s) have a recent verified backup."
    )
    blocks: list[Block] = [section(f"*Backup status* · {summary}")]
    if overall is not None and statuses:
        now = statuses[0].now
        lines = [checklist_line(overall.checklist, now)]
        lines += [alert_line(a, now) for a in overall.alerts]
        blocks.append(context("\n".join(lines)))
    for i, s in enumerate(statuses):
        part = [{"type": "divider"}, *_status_lines(s)]
        if len(blocks) + len(part) > MAX_BLOCKS - 1:
            rest = len(statuses) - i
            blocks.append(context(f"{rest} more database(s); ask for one: `/backup status DB`."))
            break
        blocks.extend(part)
    if charts is not None:
        blocks = [*blocks[: MAX_BLOCKS - 1], context(chart_line(charts, channel))]
    return Message(f"Backup status: {summary}", blocks)


def incident_line(i: Incident) -> str:
    who = mention(i.actor)
    db = f" {code(i.database)}" if i.database else ""
    bid = f" id {code(i.backup_id)}" if i.backup_id else ""
    detail = note_detail(i) or i.details.get("error") or i.details.get("reason") or ""
    detail = f" — {esc(detail)}" if detail else ""
    return f"{code(humanize.utc(i.at))} {who} *{esc(i.action)}*{db} {esc(i.outcome)}{bid}{detail}"


def chain_line(chain: ChainCheck) -> str:
    if chain.intact:
        return f":link: Hash chain intact over all {chain.records} records."
    return (
        f":rotating_light: The hash chain is *broken* at record {chain.first_broken_id}: "
        f"{esc(chain.problem)}. Run `backupbot log verify` and treat the log as tampered with."
    )


def log_message(incidents: Sequence[Incident], chain: ChainCheck) -> Message:
    if not incidents:
        return Message("The incident log is empty.", [section("The incident log is empty.")])
    blocks: list[Block] = [
        section(f"*Incident log* · last {len(incidents)} record(s)"),
        context(chain_line(chain)),
    ]
    chunk: list[str] = []
    for line in (incident_line(i) for i in incidents):
        line = clip(line, 600)
        if sum(len(c) + 1 for c in chunk) + len(line) > MAX_SECTION_TEXT - 100:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(section("\n".join(chunk)))
    return Message(f"Incident log: last {len(incidents)} record(s).", blocks[:MAX_BLOCKS])


def help_message() -> Message:
    offered = specs(Surface.SLACK)
    lines = [f"{code(s.usage())}\n{esc(s.summary)}" for s in offered]
    return Message(
        "backupbot commands: " + "; ".join(s.usage() for s in offered),
        [section("*backupbot* keeps your PostgreSQL backups honest.\n\n" + "\n\n".join(lines))],
    )
