"""Block Kit for the monthly checklist: the checklist message in every state, the
reminder, refusals, and reading a checkbox click back.

Pure functions from `ChecklistRecord` (with its stored evaluation) to `Message`. Each item
is a section with its verdict and evidence; one `checkboxes` element carries the five
items (ticked ones as `initial_options`) beside the **Sign off** button. After the
sign-off the controls are gone and the message says who signed off and when.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backupbot.bot.slack.kit import (
    Block,
    Message,
    clip,
    code,
    context,
    esc,
    mention,
    notice,
    render,
    section,
)
from backupbot.commands import humanize
from backupbot.commands.checklist_rules import (
    ITEM_KEYS,
    ChecklistEvaluation,
    item_title,
    message_link,
)
from backupbot.phrases import Phrase
from backupbot.storage.checklists import ChecklistRecord

CHECK_ACTION = "checklist_tick"
SIGN_OFF_ACTION = "checklist_sign_off"
_BLOCK_PREFIX = "checklist"
MAX_OPTION_TEXT = 75  # Slack's limit for an option's text and description


def actions_block_id(record: ChecklistRecord) -> str:
    """Changes with every version, so Slack clients redraw the ticks from the message."""
    return f"{_BLOCK_PREFIX}:{record.id}:{record.version}"


def checklist_id_of(block_id: str) -> str | None:
    parts = block_id.split(":")
    return parts[1] if len(parts) == 3 and parts[0] == _BLOCK_PREFIX else None


def _options(evaluation: ChecklistEvaluation | None) -> list[dict[str, Any]]:
    options = []
    for key in ITEM_KEYS:
        option: dict[str, Any] = {
            "text": {"type": "plain_text", "text": clip(item_title(key), MAX_OPTION_TEXT)},
            "value": key,
        }
        if evaluation is not None:
            item = evaluation.item(key)
            option["description"] = {
                "type": "plain_text",
                "text": clip(f"{item.mark} {item.summary}", MAX_OPTION_TEXT),
            }
        options.append(option)
    return options


def _controls(record: ChecklistRecord, evaluation: ChecklistEvaluation | None) -> Block:
    options = _options(evaluation)
    checkboxes: dict[str, Any] = {
        "type": "checkboxes",
        "action_id": CHECK_ACTION,
        "options": options,
    }
    initial = [o for o in options if o["value"] in record.ticked]
    if initial:
        checkboxes["initial_options"] = initial
    sign_off = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Sign off"},
        "action_id": SIGN_OFF_ACTION,
        "value": record.id,
        "style": "primary",
        "confirm": {
            "title": {"type": "plain_text", "text": "Sign off the checklist?"},
            "text": {
                "type": "mrkdwn",
                "text": (
                    f"You confirm that you reviewed the five items for {record.period}. The "
                    "bot records you, the time and its evaluation at this moment."
                ),
            },
            "confirm": {"type": "plain_text", "text": "Sign off"},
            "deny": {"type": "plain_text", "text": "Back"},
        },
    }
    return {
        "type": "actions",
        "block_id": actions_block_id(record),
        "elements": [checkboxes, sign_off],
    }


def _signed_off(record: ChecklistRecord, evaluation: ChecklistEvaluation | None) -> Block:
    """Who signed off and when, what needed a look then, and the reason given for it."""
    look = evaluation.needs_look if evaluation else []
    caveat = (
        f", with {len(look)} item(s) that needed a look: " + ", ".join(item_title(k) for k in look)
        if look
        else ", with every item ok"
    )
    reason = record.evaluation.get("sign_off_reason") if record.evaluation else None
    why = f"\nReason: _{esc(reason)}_" if reason else ""
    return section(
        f":white_check_mark: *Signed off by {mention(record.signed_off_by or '?')} on "
        f"{humanize.utc(record.signed_off_at)}*{caveat}.{why}"
    )


def checklist_message(record: ChecklistRecord) -> Message:
    """The checklist message: title, each item with its evidence, then the checkboxes and
    Sign off (or, once signed off, who signed and when)."""
    evaluation = ChecklistEvaluation.from_json(record.evaluation)
    title = f":clipboard: *Backup verification checklist · {record.period}*"
    if evaluation is not None:
        checked = (
            f"The bot checked its own records from {evaluation.since:%Y-%m-%d} to "
            f"{humanize.utc(evaluation.at)}"
        )
    else:
        checked = "The bot has not evaluated this checklist yet"
    if record.signed_off:
        intro = f"{checked} (evaluated again at the sign-off)."
    else:
        intro = (
            f"{checked}. Look at each item's evidence, tick it, then press *Sign off*. "
            ":white_check_mark: ok · :warning: needs a look"
        )
    blocks: list[Block] = [section(f"{title}\n{intro}")]
    for key in ITEM_KEYS:
        if evaluation is None:
            blocks.append(section(f"*{item_title(key)}*\nnot evaluated"))
            continue
        item = evaluation.item(key)
        blocks.append(section(f"{item.mark} *{item.title}*\n" + "\n".join(map(render, item.lines))))
    ticked = len(record.ticked)
    if record.signed_off:
        blocks.append(_signed_off(record, evaluation))
    else:
        blocks.append(_controls(record, evaluation))
    blocks.append(
        context(
            f"Posted {humanize.utc(record.posted_at)} · {ticked} of {len(ITEM_KEYS)} ticked "
            f"· checklist {code(record.id)}"
        )
    )
    if record.signed_off:
        text = (
            f"Backup verification checklist {record.period}: signed off by "
            f"{record.signed_off_by} on {humanize.utc(record.signed_off_at)}."
        )
    else:
        verdicts = (
            ", ".join(f"{evaluation.item(k).mark} {item_title(k)}" for k in ITEM_KEYS)
            if evaluation
            else "not evaluated"
        )
        text = f"Backup verification checklist {record.period}: {verdicts}."
    return Message(text, blocks)


def reminder_message(record: ChecklistRecord, now: datetime) -> Message:
    where = (
        f"<{message_link(record.channel, record.message_ts)}|open the checklist>"
        if record.channel and record.message_ts
        else "the checklist message"
    )
    text = (
        f":alarm_clock: The {record.period} backup verification checklist is not signed off "
        f"yet (posted {humanize.age(record.posted_at, now)}, {len(record.ticked)} of "
        f"{len(ITEM_KEYS)} items ticked). Review the evidence, tick the items and press "
        f"*Sign off*: {where}."
    )
    return Message(
        f"The {record.period} backup verification checklist is not signed off yet.",
        [section(text)],
    )


def refused(text: Phrase | str) -> Message:
    return notice(f":warning: {render(text)}")


# -- reading clicks back ------------------------------------------------------------------------


def selected_values(action: dict[str, Any]) -> list[str]:
    """The ticked item keys a `checkboxes` action sent."""
    return [str(o.get("value")) for o in action.get("selected_options") or []]


def seen_values(message: dict[str, Any] | None, block_id: str) -> list[str] | None:
    """The ticks the clicked message showed (its `initial_options`), or None when the
    payload does not carry the message."""
    if not message or not isinstance(message.get("blocks"), list):
        return None
    for block in message["blocks"]:
        if block.get("block_id") != block_id:
            continue
        for element in block.get("elements") or []:
            if element.get("type") == "checkboxes":
                return [str(o.get("value")) for o in element.get("initial_options") or []]
    return None
