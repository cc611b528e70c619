"""The terminal renderer: plain text for a person at a shell, never mrkdwn.

`render(phrase)` turns a `Phrase` from commands/ into plain text (names as they are,
actors as their id, commands as the `backupbot ...` command line, message links as their
words and URL). The feature modules (`backup`, `restore`, `drill`, `status`,
`retention`, `log`, `rto`) are pure functions from result objects to the text and the JSON the
CLI prints.
"""

from __future__ import annotations

from backupbot.bot.cli.render.phrase import cli_command, command_line, render

__all__ = ["cli_command", "command_line", "render"]
