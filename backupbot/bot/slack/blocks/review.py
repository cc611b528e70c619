"""Block Kit for the review of a break-glass restore: the "review required" part of its
notice (with the Reviewed button until someone reviews it), and the thread note."""

from __future__ import annotations

from datetime import datetime

from backupbot.bot.slack.kit import Block, Message, mention, notice, section
from backupbot.commands import humanize
from backupbot.commands.escalation_review import Review
from backupbot.storage.restores import RestoreRecord

REVIEW_ACTION = "restore_review"
ACTIONS_BLOCK = "restore_review_actions"


def review_blocks(r: RestoreRecord, review: Review | None, due_at: datetime) -> list[Block]:
    """What the notice says about the review: required (and by when), or done."""
    if review is not None:
        return [
            section(
                f":white_check_mark: *Reviewed* by {mention(review.user)} at "
                f"{humanize.utc(review.at)}."
            )
        ]
    return [
        section(
            f":mag: *Review required*: an approver other than {mention(r.requester)} presses "
            f"*Reviewed* before {humanize.utc(due_at)}; otherwise this escalates like an alert."
        ),
        {
            "type": "actions",
            "block_id": ACTIONS_BLOCK,
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Reviewed"},
                    "action_id": REVIEW_ACTION,
                    "value": r.id,
                    "style": "primary",
                }
            ],
        },
    ]


def reviewed_note(r: RestoreRecord, review: Review) -> Message:
    """The thread reply when an approver reviewed the restore."""
    return notice(
        f":white_check_mark: {mention(review.user)} reviewed this break-glass restore at "
        f"{humanize.utc(review.at)}."
    )
