"""Block Kit primitives: the message type, Slack's size limits and the text blocks every
renderer builds on. Pure functions; nothing here calls Slack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000

Block = dict[str, Any]


@dataclass(frozen=True)
class Message:
    text: str
    blocks: list[Block]

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)}}


def fields(pairs: Sequence[tuple[str, str]]) -> Block:
    return {
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": clip(f"*{k}*\n{v}", MAX_FIELD_TEXT)} for k, v in pairs[:10]
        ],
    }


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, 3000)}]}


def usage_error(problem: str, usage: str) -> Message:
    text = f"{problem}\nUsage: {usage}" if usage else problem
    body = f":warning: {problem}"
    if usage:
        body += "\n*Usage*\n" + "\n".join(f"`{u}`" for u in usage.splitlines())
    return Message(text, [section(body)])


def notice(text: str) -> Message:
    return Message(text, [section(text)])
