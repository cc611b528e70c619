"""Posting and updating channel messages, failing softly: a Slack error is logged and
reported as a missing result, so the work it describes (a backup, a restore) goes on."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from backupbot.bot.blocks import Message

if TYPE_CHECKING:
    from slack_sdk import WebClient

log = logging.getLogger(__name__)


def post(
    client: WebClient, channel: str, message: Message, thread_ts: str | None = None
) -> str | None:
    """The new message's ts, or None if Slack refused or could not be reached."""
    try:
        resp = client.chat_postMessage(channel=channel, thread_ts=thread_ts, **message.as_kwargs())
        return str(resp["ts"])
    except SlackApiError as exc:
        log.error("could not post to %s: %s", channel, exc.response.get("error"))
    except OSError as exc:
        log.error("Slack is unreachable: %s", exc)
    return None


def update(client: WebClient, channel: str, ts: str, message: Message) -> bool:
    try:
        client.chat_update(channel=channel, ts=ts, **message.as_kwargs())
        return True
    except SlackApiError as exc:
        log.error("could not update %s in %s: %s", ts, channel, exc.response.get("error"))
    except OSError as exc:
        log.error("Slack is unreachable: %s", exc)
    return False
