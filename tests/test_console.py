"""The demo's terminal rendering of Slack messages: what a person in the channel sees."""

from __future__ import annotations

from typing import Any

import pytest

from backupbot.devkit.console import plain, render_blocks, render_message

NAMES = {"U0DEMO": "@alice", "U0REVIEW": "@bob", "C0DEMO": "#backups", "S0DBAS": "@dbas"}

PLAIN_CASES = [
    # emoji shortcodes, Slack's names included
    (":clipboard: Backup verification checklist", "📋 Backup verification checklist"),
    (":white_check_mark: ok · :warning: needs a look", "✅ ok · ⚠️ needs a look"),
    (":x: :rotating_light: :heavy_check_mark: :mega:", "❌ 🚨 ✔️ 📣"),
    (":not_an_emoji_at_all: stays", ":not_an_emoji_at_all: stays"),
    ("at 02:34:56 UTC", "at 02:34:56 UTC"),
    # links
    ("<https://slack.com/archives/C0DEMO/p17|drill message>", "drill message"),
    ("see <https://example.com/a?b=1&amp;c=2>", "see https://example.com/a?b=1&c=2"),
    ("mail <mailto:support@railway.app|support@railway.app>", "mail support@railway.app"),
    ("<https://x.test|*bold* link :eyes:>", "bold link 👀"),
    # people, channels, groups, special mentions
    ("by <@U0DEMO>, approved by <@U0REVIEW>", "by @alice, approved by @bob"),
    ("<@U0NOBODY> asked", "@U0NOBODY asked"),
    ("<@U0OLD|carol> asked", "@carol asked"),
    ("will appear in <#C0DEMO>.", "will appear in #backups."),
    ("in <#C0OTHER|general> and <#C0ELSE>", "in #general and #C0ELSE"),
    ("<!subteam^S0DBAS> and <!subteam^S0X|@oncall>", "@dbas and @oncall"),
    ("<!here> <!channel> <!everyone>", "@here @channel @everyone"),
    ("<!date^1700000000^{date}|Nov 14>", "Nov 14"),
    # emphasis
    ("*Backup of `app` succeeded*", "Backup of app succeeded"),
    ("reason: _check bad deploy_", "reason: check bad deploy"),
    ("~old~ new", "old new"),
    ("*_both_*", "both"),
    ("_*both*_", "both"),
    ("*Requested by <@U0DEMO>*", "Requested by @alice"),
    ("*Size*\n19.1 KB", "Size\n19.1 KB"),
    # what is not emphasis stays
    ("app_copy and backupbot_drill_app_1", "app_copy and backupbot_drill_app_1"),
    ("_restore into app_copy_", "restore into app_copy"),
    ("cron 0 2 * * * and */5 * * * *", "cron 0 2 * * * and */5 * * * *"),
    ("2*3*4", "2*3*4"),
    ("a * b * c", "a * b * c"),
    ("* not bold*", "* not bold*"),
    # code keeps its text verbatim: no emoji, no emphasis inside; backticks go
    ("`f42907cb`", "f42907cb"),
    ("`*/5 * * * * *` and `:x:` and `_x_`", "*/5 * * * * * and :x: and _x_"),
    ("```zstd -dc a.zst | pg_restore -d t```", "zstd -dc a.zst | pg_restore -d t"),
    ("```\nline 1\nline 2\n```", "line 1\nline 2"),
    # escapes
    ("a &lt; b &gt; c &amp; d", "a < b > c & d"),
    ("`&lt;TARGET&gt;`", "<TARGET>"),
    ("&amp;lt; stays one level", "&lt; stays one level"),
    # a mix, as the bot writes them
    (
        ":mega: *DevOps Lead* (level 1 of 1)\n<@U0REVIEW>: please press *Acknowledge*.",
        "📣 DevOps Lead (level 1 of 1)\n@bob: please press Acknowledge.",
    ),
]


@pytest.mark.parametrize(("text", "shown"), PLAIN_CASES)
def test_plain_shows_what_slack_shows(text: str, shown: str) -> None:
    assert plain(text, NAMES) == shown


def test_plain_without_names_falls_back_to_ids() -> None:
    assert plain("<@U0DEMO> in <#C0DEMO>") == "@U0DEMO in #C0DEMO"


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _plain_text(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


BLOCK_CASES: list[tuple[list[dict[str, Any]], str]] = [
    ([{"type": "section", "text": _mrkdwn(":x: *Failed*\nline two")}], "❌ Failed\nline two"),
    (
        [{"type": "section", "fields": [_mrkdwn("*Size*\n19.1 KB"), _mrkdwn("*By*\n<@U0DEMO>")]}],
        "  Size: 19.1 KB\n  By: @alice",
    ),
    (
        [{"type": "context", "elements": [_mrkdwn("id `ab12`"), _mrkdwn("by <@U0REVIEW>")]}],
        "id ab12 by @bob",
    ),
    ([{"type": "header", "text": _plain_text("Status :eyes:")}], "STATUS 👀"),
    ([{"type": "divider"}], "-" * 60),
    (
        [
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": _plain_text("Approve"), "value": "r1"},
                    {"type": "button", "text": _plain_text("Deny"), "value": "r1"},
                ],
            }
        ],
        "[ Approve ]  [ Deny ]",
    ),
    (
        [
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "checkboxes",
                        "options": [
                            {"text": _mrkdwn("*1.* Backups"), "value": "a"},
                            {"text": _plain_text("2. Retention"), "value": "b"},
                        ],
                        "initial_options": [{"text": _mrkdwn("*1.* Backups"), "value": "a"}],
                    },
                    {"type": "button", "text": _plain_text("Sign off"), "value": "c1"},
                ],
            }
        ],
        "[x] 1. Backups\n[ ] 2. Retention\n[ Sign off ]",
    ),
    # plain_text is shown as typed: emoji, but no mrkdwn
    ([{"type": "section", "text": _plain_text("*not bold* :x:")}], "*not bold* ❌"),
    ([{"type": "unknown_future_block"}], ""),
]


@pytest.mark.parametrize(("blocks", "shown"), BLOCK_CASES)
def test_render_blocks_lays_out_what_the_channel_shows(
    blocks: list[dict[str, Any]], shown: str
) -> None:
    assert render_blocks(blocks, "", NAMES) == shown


def test_render_blocks_indents_every_line() -> None:
    blocks = [{"type": "section", "text": _mrkdwn("a\nb")}]
    assert render_blocks(blocks, ">> ", NAMES) == ">> a\n>> b"


def test_render_message_falls_back_to_the_text_without_blocks() -> None:
    assert render_message("*Done* by <@U0DEMO>", [], "  ", NAMES) == "  Done by @alice"
    blocks = [{"type": "section", "text": _mrkdwn("from blocks")}]
    assert render_message("ignored", blocks, "", NAMES) == "from blocks"
