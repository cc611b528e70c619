"""Render Slack messages as terminal text: what a person in the channel would see.

`plain` turns one mrkdwn string into what Slack displays: emoji shortcodes become emoji
(`:clipboard:` → 📋), `<url|text>` links their text, `<@U…>` the person's name and
`<#C…>` the channel's (from `names`, else the bare id), `<!here>` `@here`; the markers of
`*bold*`, `_italic_`, `~strike~` and `` `code` `` go (code keeps its text verbatim), and
`&lt; &gt; &amp;` are unescaped. `render_blocks` lays a message's Block Kit out as lines.
Both are pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import emoji

Names = Mapping[str, str]  # Slack id (U…, C…, S…) -> how it is shown ("@alice", "#backups")

# Code spans, then `<…>` control sequences (Slack escapes every literal `<` as `&lt;`).
_TOKEN = re.compile(r"```(?P<block>.*?)```|`(?P<code>[^`\n]+)`|<(?P<entity>[^<>\n]+)>", re.DOTALL)
# A placeholder for a stashed token: one character from Unicode's private use plane 15,
# which is neither a word character nor whitespace, so emphasis rules treat it as text.
_STASH_BASE = 0xF0000
_STASHED = re.compile("[\U000f0000-\U000ffffd]")
_ALNUM = r"[^\W_]"


def _emphasis(marker: str) -> re.Pattern[str]:
    """Slack's rule: the opening marker is not inside a word and is followed by a non-space;
    the closing one follows a non-space and is not followed by a letter or digit."""
    m = re.escape(marker)
    return re.compile(rf"(?<!{_ALNUM}){m}(?=[^\s{m}])(.*?\S){m}(?!{_ALNUM})")


_EMPHASIS = tuple(_emphasis(m) for m in ("*", "_", "~"))


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _entity(body: str, names: Names) -> str:
    """What Slack shows for `<body>`: a mention, a special mention, or a link."""
    target, _, raw_label = body.partition("|")
    label = _unescape(raw_label)
    if target[:1] in ("@", "#"):
        sigil, ident = target[0], target[1:]
        return names.get(ident) or f"{sigil}{label or ident}"
    if target.startswith("!"):
        command = target[1:]
        if command in ("here", "channel", "everyone"):
            return f"@{command}"
        if command.startswith("subteam^"):
            group = command.split("^", 1)[1]
            return names.get(group) or label or f"@{group}"
        return label or f"@{command}"
    return plain(raw_label, names) if raw_label else _unescape(target)


def plain(text: str, names: Names | None = None) -> str:
    """The mrkdwn `text` as a person reads it in Slack (see the module docstring)."""
    known = names or {}
    stash: list[str] = []

    def keep(match: re.Match[str]) -> str:
        if match["block"] is not None:
            shown = _unescape(match["block"].strip("\n"))
        elif match["code"] is not None:
            shown = _unescape(match["code"])
        else:
            shown = _entity(match["entity"], known)
        stash.append(shown)
        return chr(_STASH_BASE + len(stash) - 1)

    text = _TOKEN.sub(keep, text)
    text = emoji.emojize(text, language="alias")
    for pattern in _EMPHASIS:
        text = pattern.sub(r"\1", text)
    text = _unescape(text)
    return _STASHED.sub(lambda m: stash[ord(m.group()) - _STASH_BASE], text)


def _text(obj: Mapping[str, Any] | None, names: Names) -> str:
    """A text object: mrkdwn through `plain`, plain_text with its emoji shortcodes shown."""
    if not obj:
        return ""
    if obj.get("type") == "mrkdwn":
        return plain(str(obj.get("text", "")), names)
    return emoji.emojize(str(obj.get("text", "")), language="alias")


def _element(element: Mapping[str, Any], names: Names) -> list[str]:
    """An interactive element as the channel shows it: `[ Approve ]`, ticked boxes."""
    kind = element.get("type")
    if kind == "button":
        return [f"[ {_text(element.get('text'), names)} ]"]
    if kind in ("checkboxes", "radio_buttons"):
        chosen = {o.get("value") for o in element.get("initial_options") or []}
        if kind == "radio_buttons" and element.get("initial_option"):
            chosen = {element["initial_option"].get("value")}
        lines = []
        for option in element.get("options") or []:
            box = "[x]" if option.get("value") in chosen else "[ ]"
            lines.append(f"{box} {_text(option.get('text'), names)}")
            if option.get("description"):
                lines.append(f"    {_text(option['description'], names)}")
        return lines
    if "placeholder" in element:
        return [f"[ {_text(element['placeholder'], names)} ▾ ]"]
    return []


def _actions(elements: Sequence[Mapping[str, Any]], names: Names) -> list[str]:
    """Buttons side by side on one line; each other element on lines of its own."""
    lines: list[str] = []
    buttons: list[str] = []
    for element in elements:
        shown = _element(element, names)
        if element.get("type") == "button":
            buttons.extend(shown)
        else:
            lines.extend(shown)
    if buttons:
        lines.append("  ".join(buttons))
    return lines


def render_blocks(
    blocks: Sequence[Mapping[str, Any]], indent: str = "  ", names: Names | None = None
) -> str:
    """`blocks` as terminal lines, each prefixed with `indent`."""
    known = names or {}
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "divider":
            lines.append("-" * 60)
        elif kind == "header":
            lines.append(_text(block.get("text"), known).upper())
        elif kind == "section":
            if block.get("text"):
                lines.extend(_text(block["text"], known).splitlines())
            for field in block.get("fields") or []:
                lines.append("  " + _text(field, known).replace("\n", ": ", 1))
            if block.get("accessory"):
                lines.extend(_element(block["accessory"], known))
        elif kind == "context":
            shown = [_text(e, known) for e in block.get("elements") or [] if "text" in e]
            lines.extend(" ".join(shown).splitlines())
        elif kind == "actions":
            lines.extend(_actions(block.get("elements") or [], known))
        elif kind == "image":
            lines.append(f"[image: {block.get('alt_text', '')}]")
    return "\n".join(indent + line for line in lines)


def render_message(
    text: str,
    blocks: Sequence[Mapping[str, Any]] | None,
    indent: str = "  ",
    names: Names | None = None,
) -> str:
    """A whole message: its blocks, or its `text` (mrkdwn) when it has none."""
    if blocks:
        return render_blocks(blocks, indent, names)
    return "\n".join(indent + line for line in plain(text, names).splitlines())
