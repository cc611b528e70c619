"""Block Kit primitives: the message type, Slack's size limits, the text blocks every
renderer builds on, and the one place text becomes mrkdwn. Pure functions; nothing here
calls Slack.

Escaped by default: `esc` turns `&`, `<` and `>` into entities, so text from a user or a
server (a label, a reason, an error, a table name) can never become a mention
(`<!channel>`, `<@U…>`), a channel link or a disguised link (`<https://evil|Approve>`).
`code`, `mention`, `link` and `render` (a `Phrase` from commands/) escape what they
interpolate; only the renderer's own mentions and links are real. A message's fallback
`text` is escaped as a whole when it is sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backupbot.phrases import Actor, Channel, Command, Literal, MessageLink, Name, Phrase

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000

Block = dict[str, Any]


@dataclass(frozen=True)
class Message:
    """Fallback `text` (plain; escaped when sent) and blocks; `notify` lists the user and
    user-group ids the fallback mentions for real (an escalation ping)."""

    text: str
    blocks: list[Block]
    notify: tuple[str, ...] = ()

    def as_kwargs(self) -> dict[str, Any]:
        mentions = " ".join(mention_any(i) for i in self.notify)
        text = f"{mentions} {esc(self.text)}" if mentions else esc(self.text)
        return {"text": text, "blocks": self.blocks}


_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,20}")
_SLACK_GROUP = re.compile(r"S[A-Z0-9]{2,20}")
_SLACK_CHANNEL = re.compile(r"[CGD][A-Z0-9]{2,20}")


def esc(text: object) -> str:
    """Text shown as is: `&`, `<`, `>` escaped, so it is never a mention or a link."""
    return str(text).translate(_ENTITIES)


def code(text: object) -> str:
    """An inline code span around escaped text (backticks and line breaks inside it would
    end the span, so they are replaced)."""
    inner = esc(text).replace("`", "\u02cb").replace("\n", " ")
    return f"`{inner}`" if inner else "``"


def mention(actor: str) -> str:
    """A Slack user id as a mention (Slack shows the name); any other actor (`cli:alice`,
    `scheduler`) as code."""
    return f"<@{actor}>" if _SLACK_USER.fullmatch(actor) else code(actor)


def mention_any(target: str) -> str:
    """A user id or a user-group id as a mention; anything else as code."""
    return f"<!subteam^{target}>" if _SLACK_GROUP.fullmatch(target) else mention(target)


def channel_link(channel: str) -> str:
    """A channel id as a channel link; anything else as code."""
    return f"<#{channel}>" if _SLACK_CHANNEL.fullmatch(channel) else code(channel)


def link(url: str, text: str) -> str:
    """A link the renderer made (a permalink it asked Slack for), with escaped words."""
    words = esc(text).replace("|", "\u00a6")
    return f"<{esc(url)}|{words}>"


def command_text(cmd: Command) -> str:
    return code("/backup " + " ".join(cmd.words))


def render(phrase: Phrase | str) -> str:
    """A phrase from commands/ as mrkdwn: names as code, actors as mentions, commands as
    the slash command, message links as links; all text escaped. A plain `str` is
    escaped text."""
    if isinstance(phrase, str):
        return esc(phrase)
    out: list[str] = []
    for part in phrase.parts:
        if isinstance(part, Literal):
            out.append(esc(part.text))
        elif isinstance(part, Name):
            out.append(code(part.value))
        elif isinstance(part, Actor):
            out.append(mention_any(part.id))
        elif isinstance(part, Channel):
            out.append(channel_link(part.id))
        elif isinstance(part, Command):
            out.append(command_text(part))
        elif isinstance(part, MessageLink):
            out.append(link(part.url, part.text) if part.url else esc(part.text))
        else:
            out.append(esc(part))
    return "".join(out)


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


def usage_error(problem: Phrase | str, usage: str) -> Message:
    """A refused command: the problem (escaped) and the command's usage."""
    text = f"{problem}\nUsage: {usage}" if usage else str(problem)
    body = f":warning: {render(problem)}"
    if usage:
        body += "\n*Usage*\n" + "\n".join(code(u) for u in usage.splitlines())
    return Message(text, [section(body)])


def notice(mrkdwn: str) -> Message:
    """One section of mrkdwn; its fallback text is the same words without markup."""
    return Message(unmark(mrkdwn), [section(mrkdwn)])


_MARKUP = re.compile(
    r"<([@#])([A-Z0-9]+)>"  # a mention or channel link
    r"|<[^<>|]*\|([^<>]*)>"  # a link: keep its words
    r"|[`*]"  # code and bold marks
    r"|(?<![0-9]):[a-z][a-z0-9_+-]*: ?"  # an emoji code (not a clock time)
)


def unmark(mrkdwn: str) -> str:
    """Mrkdwn as plain text for a fallback: mentions as `@U…`/`#C…`, links as their
    words, code and bold marks and emoji codes dropped, entities decoded (the fallback is
    escaped again when sent)."""

    def plain(m: re.Match[str]) -> str:
        if m.group(1):
            return m.group(1) + m.group(2)
        return m.group(3) or ""

    text = _MARKUP.sub(plain, mrkdwn)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
