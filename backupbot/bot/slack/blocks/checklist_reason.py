"""The modal that asks why a checklist showing warnings is signed off anyway.

`private_metadata` carries the checklist id and the message the Sign off click came
from, so the submission is checked against the same message as the click."""

from __future__ import annotations

import json
from typing import Any

from backupbot.bot.slack.kit import section
from backupbot.commands.checklist import MAX_REASON
from backupbot.commands.checklist_rules import item_title

CALLBACK_ID = "checklist_sign_off_reason"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_text"
MIN_REASON = 3  # characters; the most is the service's MAX_REASON


def reason_modal(checklist_id: str, channel: str, ts: str, look: list[str]) -> dict[str, Any]:
    items = ", ".join(item_title(k) for k in look)
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "private_metadata": json.dumps({"checklist": checklist_id, "channel": channel, "ts": ts}),
        "title": {"type": "plain_text", "text": "Sign off checklist"},
        "submit": {"type": "plain_text", "text": "Sign off"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(
                f":warning: *{items}* needs a look. Say why signing off is acceptable this "
                "month; the reason is kept with the sign-off and in the incident log."
            ),
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "min_length": MIN_REASON,
                    "max_length": MAX_REASON,
                },
            },
        ],
    }


def submitted(view: dict[str, Any]) -> tuple[dict[str, str], str]:
    """The submission's metadata (checklist, channel, ts) and its reason text."""
    meta = json.loads(view.get("private_metadata") or "{}")
    values = (view.get("state") or {}).get("values") or {}
    text = ((values.get(REASON_BLOCK) or {}).get(REASON_INPUT) or {}).get("value") or ""
    return {k: str(meta.get(k, "")) for k in ("checklist", "channel", "ts")}, str(text)


def reason_error(text: str) -> str | None:
    """Why the typed reason cannot be taken (shown under the field), or None."""
    words = " ".join(text.split())
    if len(words) < MIN_REASON:
        return "Say why, in a few words."
    if len(words) > MAX_REASON:
        return f"Keep it under {MAX_REASON} characters."
    return None
