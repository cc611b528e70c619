"""The Block Kit limits real Slack enforces, and `block_kit_errors`, which reports what
breaks them the way Slack's `invalid_blocks` error does."""

from __future__ import annotations

from typing import Any

MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ACTION_ID = 255
MAX_BLOCK_ID = 255
MAX_MESSAGE_TEXT = 40000


def block_kit_errors(blocks: Any, max_blocks: int = MAX_BLOCKS) -> list[str]:
    """Slack-style `invalid_blocks` messages for `blocks`; empty if Slack would accept them."""
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        path = f"/blocks/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"missing required field: type [json-pointer:{path}]")
            continue
        _check_length(errors, block.get("block_id"), MAX_BLOCK_ID, f"{path}/block_id", 1)
        if block["type"] == "section":
            text = _text_of(block.get("text"))
            _check_length(errors, text, MAX_SECTION_TEXT, f"{path}/text/text")
            fields = block.get("fields")
            if isinstance(fields, list):
                if len(fields) > MAX_SECTION_FIELDS:
                    limit = f"no more than {MAX_SECTION_FIELDS} items allowed"
                    errors.append(f"{limit} [json-pointer:{path}/fields]")
                for j, item in enumerate(fields):
                    _check_length(errors, _text_of(item), MAX_FIELD_TEXT, f"{path}/fields/{j}/text")
            elif "text" not in block:
                errors.append(f"must provide either text or fields [json-pointer:{path}]")
        elif block["type"] == "header":
            _check_length(errors, _text_of(block.get("text")), MAX_HEADER_TEXT, f"{path}/text/text")
        _check_elements(block, path, errors)
    return errors


def _text_of(obj: Any) -> Any:
    """The `text` string of a text object, or None when `obj` is not one."""
    return obj.get("text") if isinstance(obj, dict) else None


def _check_length(
    errors: list[str], value: Any, limit: int, pointer: str, minimum: int = 1
) -> None:
    """Append an error if `value` is a string outside [minimum, limit] characters."""
    if not isinstance(value, str):
        return
    if len(value) > limit:
        errors.append(f"must be less than {limit + 1} characters [json-pointer:{pointer}]")
    elif len(value) < minimum:
        errors.append(f"must be more than {minimum - 1} characters [json-pointer:{pointer}]")


def _check_elements(node: Any, path: str, errors: list[str]) -> None:
    """Walk every nested element (accessories, actions, context, inputs) checking their limits."""
    if isinstance(node, dict):
        if "action_id" in node:
            _check_length(errors, node["action_id"], MAX_ACTION_ID, f"{path}/action_id")
        if node.get("type") == "button":
            _check_length(errors, node.get("value"), MAX_BUTTON_VALUE, f"{path}/value", 0)
            _check_length(errors, _text_of(node.get("text")), MAX_BUTTON_TEXT, f"{path}/text/text")
        for key, child in node.items():
            if isinstance(child, dict | list):
                _check_elements(child, f"{path}/{key}", errors)
    elif isinstance(node, list):
        for i, child in enumerate(node):
            _check_elements(child, f"{path}/{i}", errors)
