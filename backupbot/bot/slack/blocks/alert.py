"""Block Kit for escalation alerts: the alert message in every state, the escalation
pings (thread reply and DM), acknowledgement and resolution notes, refusals.

Pure functions from `AlertRecord` / `Ping` to `Message`. The alert message keeps its
body (what is wrong, what to do) in every state; only the status at the bottom changes,
and the Acknowledge button exists only while the alert is open and unacknowledged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from backupbot.bot.slack.kit import (
    Block,
    Message,
    channel_link,
    code,
    context,
    esc,
    link,
    mention,
    notice,
    render,
    section,
    unmark,
)
from backupbot.commands import humanize
from backupbot.commands.conditions import (
    BACKUP_FAILED,
    CHECKLIST_OVERDUE,
    DRILL_FAILED,
    DRILL_MISSING,
    PROVIDER_RECOVERY,
    STALE,
    VERIFICATION_FAILED,
)
from backupbot.commands.escalation_review import REVIEW_OVERDUE
from backupbot.commands.escalation_types import Ping, Repage
from backupbot.phrases import Phrase
from backupbot.settings import EscalationLevel
from backupbot.storage.alerts import OPEN, AlertRecord

ACK_ACTION = "alert_ack"
ACTIONS_BLOCK = "alert_actions"

TITLES = {
    BACKUP_FAILED: "Backup failed",
    VERIFICATION_FAILED: "Backup failed verification",
    STALE: "No recent verified backup",
    DRILL_FAILED: "Restore drill failed",
    DRILL_MISSING: "No passed restore drill",
    CHECKLIST_OVERDUE: "Monthly checklist overdue",
    PROVIDER_RECOVERY: "Provider recovery not as the runbook asks",
    REVIEW_OVERDUE: "Break-glass restore not reviewed",
}


def title(alert: AlertRecord) -> str:
    return TITLES.get(alert.condition, alert.condition.replace("_", " ").capitalize())


_GROUP = re.compile(r"S[A-Z0-9]{2,20}")


def _where(alert: AlertRecord) -> str:
    return f" · {code(alert.database)}" if alert.database else ""


def _path(levels: Sequence[EscalationLevel], fired: int) -> str:
    steps = []
    for i, lvl in enumerate(levels):
        when = "at once" if lvl.after_minutes == 0 else f"after {lvl.after_minutes} min"
        mark = "✓ " if i < fired else ""
        steps.append(f"{mark}{esc(lvl.name)} ({when})")
    return "Escalation: " + " → ".join(steps)


def _ack_button(alert: AlertRecord) -> Block:
    return {
        "type": "actions",
        "block_id": ACTIONS_BLOCK,
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Acknowledge"},
                "action_id": ACK_ACTION,
                "value": alert.id,
                "style": "primary",
            }
        ],
    }


def _acked_line(alert: AlertRecord, reack_after: timedelta | None = None) -> str:
    line = (
        f":eyes: Acknowledged by {mention(alert.acknowledged_by or '?')} at "
        f"{humanize.utc(alert.acknowledged_at)}:"
    )
    if alert.status == OPEN and reack_after is not None and alert.acknowledged_at is not None:
        again = humanize.utc(alert.acknowledged_at + reack_after)
        return f"{line} pings paused; they start again at {again} if this is still failing."
    return f"{line} no more pings."


def _lapsed_line(alert: AlertRecord) -> str | None:
    """The last acknowledgement that timed out, if one did and nobody acknowledged since."""
    lapse = alert.details.get("reack") or {}
    if not lapse or alert.acknowledged_by:
        return None
    return (
        f":repeat: Acknowledged by {mention(str(lapse.get('acknowledged_by', '?')))}, but "
        f"still failing at {esc(_iso_utc(lapse.get('at')))}: *unacknowledged*, paging again."
    )


def _iso_utc(value: object) -> str:
    try:
        return humanize.utc(datetime.fromisoformat(str(value)))
    except ValueError:
        return "?"


def _status(
    alert: AlertRecord, levels: Sequence[EscalationLevel], reack_after: timedelta | None = None
) -> list[Block]:
    if alert.status != OPEN:
        lines = [
            f":white_check_mark: *Resolved* at {humanize.utc(alert.resolved_at)}: "
            f"{esc(alert.resolution or 'the condition cleared.')}"
        ]
        if alert.acknowledged_by:
            lines.append(_acked_line(alert))
        return [section("\n".join(lines))]
    if alert.acknowledged_by:
        return [
            section(
                _acked_line(alert, reack_after)
                + " This alert resolves itself when the condition clears."
            )
        ]
    lapsed = _lapsed_line(alert)
    return [
        *([section(lapsed)] if lapsed else []),
        context(f"{_path(levels, alert.levels_fired)} · pings stop when someone acknowledges"),
        _ack_button(alert),
    ]


def alert_message(
    alert: AlertRecord,
    levels: Sequence[EscalationLevel] = (),
    reack_after: timedelta | None = None,
) -> Message:
    """The channel message of an alert, in its current state (`reack_after`: how long an
    acknowledgement holds, shown while it does)."""
    icon = ":white_check_mark:" if alert.status != OPEN else ":rotating_light:"
    resolved = " — resolved" if alert.status != OPEN else ""
    head = f"{icon} *{title(alert)}*{_where(alert)}{resolved}"
    blocks = [
        section(f"{head}\n{render(alert.summary_phrase)}"),
        context(f"alert {code(alert.id)} · opened {humanize.utc(alert.opened_at)}"),
        *_status(alert, levels, reack_after),
    ]
    if alert.status != OPEN:
        state = "resolved"
    else:
        state = "acknowledged" if alert.acknowledged_by else "open"
        if not alert.acknowledged_by and alert.details.get("reack"):
            state = "open, unacknowledged again"
    where = f" ({alert.database})" if alert.database else ""
    text = f"Alert{where}, {state}: {title(alert)}. {alert.summary}"
    return Message(text[:3000], blocks)


def _mentions(ping: Ping) -> str:
    groups = (f"<!subteam^{g}>" if _GROUP.fullmatch(g) else code(g) for g in ping.groups)
    return " ".join([*(mention(u) for u in ping.users), *groups])


def ping_message(ping: Ping) -> Message:
    """The thread reply of one escalation level."""
    head = (
        f":mega: *{esc(ping.name)}* (level {ping.number} of {ping.level_count}, "
        f"{'at once' if ping.after_minutes == 0 else f'after {ping.after_minutes} min'})"
    )
    lines = [head]
    if not ping.nobody:
        lines.append(f"{_mentions(ping)}: please look at this alert and press *Acknowledge*.")
    if ping.provider_support:
        if ping.provider_contact:
            lines.append(f":telephone_receiver: {esc(ping.provider_contact)}")
        elif ping.alert.database is None:
            lines.append("This alert is not about one database, so no provider support applies.")
    if ping.nobody and not (ping.provider_support and ping.provider_contact):
        lines.append(
            f"Nobody is configured for this level: add Slack user ids (U…) or user-group "
            f"ids (S…) to `escalation.levels[{ping.level_index}].mention` in the config."
        )
    notes = []
    if ping.late:
        notes.append(
            f"due at {humanize.utc(ping.due_at)}; sent late (the bot was not running or Slack "
            "was unreachable)"
        )
    if ping.next_name is not None:
        notes.append(
            f"next: {esc(ping.next_name)} at {ping.next_after_minutes} min if nobody acknowledges"
        )
    else:
        notes.append("this is the last level")
    text = unmark(" ".join(lines))
    notify = (*ping.users, *ping.groups)
    return Message(text, [section("\n".join(lines)), context(" · ".join(notes))], notify)


def ping_dm(ping: Ping, channel: str, permalink: str | None) -> Message:
    """The DM each user of a level gets."""
    alert = ping.alert
    alert_link = link(permalink, "the alert") if permalink else "the alert"
    text = (
        f":rotating_light: You are on the escalation path as *{esc(ping.name)}* for "
        f"{title(alert)}{_where(alert)} in {channel_link(channel)}: {render(alert.summary_phrase)}"
    )
    return Message(
        unmark(text)[:3000],
        [section(text), context(f"Open {alert_link} and press Acknowledge to stop the pings.")],
    )


def ack_note(alert: AlertRecord, reack_after: timedelta | None = None) -> Message:
    """The thread reply when someone acknowledges."""
    head = (
        f":eyes: {mention(alert.acknowledged_by or '?')} acknowledged this alert at "
        f"{humanize.utc(alert.acknowledged_at)};"
    )
    if reack_after is not None and alert.acknowledged_at is not None:
        again = humanize.utc(alert.acknowledged_at + reack_after)
        return notice(f"{head} pings paused until {again}, then they start again if still failing.")
    return notice(f"{head} no more pings.")


def _repage_mentions(repage: Repage) -> str:
    groups = (f"<!subteam^{g}>" if _GROUP.fullmatch(g) else code(g) for g in repage.groups)
    return " ".join([*(mention(u) for u in repage.users), *groups])


def repage_message(repage: Repage) -> Message:
    """The thread reply when an acknowledgement timed out with the alert still failing."""
    level = f" ({esc(repage.level_name)})" if repage.level_name else ""
    lines = [
        f":repeat: Still failing {repage.minutes} min after "
        f"{mention(repage.acknowledged_by)} acknowledged; paging again.",
        f"{_repage_mentions(repage)}{level}: please look at this alert and press *Acknowledge*.",
    ]
    notify = (*repage.users, *repage.groups)
    return Message(unmark(" ".join(lines)), [section("\n".join(lines))], notify)


def repage_dm(repage: Repage, channel: str, permalink: str | None) -> Message:
    """The DM the acknowledger and the current level's users get on a re-page."""
    alert = repage.alert
    alert_link = link(permalink, "the alert") if permalink else "the alert"
    text = (
        f":repeat: {title(alert)}{_where(alert)} in {channel_link(channel)} is still failing "
        f"{repage.minutes} min after {mention(repage.acknowledged_by)} acknowledged it: "
        f"{render(alert.summary_phrase)}"
    )
    return Message(
        unmark(text)[:3000],
        [section(text), context(f"Open {alert_link} and press Acknowledge again.")],
    )


def resolution_note(alert: AlertRecord) -> Message:
    """The thread reply when the condition cleared."""
    return notice(
        f":white_check_mark: Resolved at {humanize.utc(alert.resolved_at)}: "
        f"{esc(alert.resolution or 'the condition cleared.')}"
    )


def refused(text: Phrase | str) -> Message:
    return notice(f":no_entry_sign: {render(text)}")
