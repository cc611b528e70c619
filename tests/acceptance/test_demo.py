"""`make demo` as a new user runs it: `python -m backupbot.devkit.demo DIR` in its own
process, which starts the real `backupbot serve` and walks through the whole runbook.

It must exit 0, show every part of the story, and print what people in the channel would
read: no raw Slack markup (ids, links, emoji shortcodes, mrkdwn markers) left over.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SECTIONS = [
    "Backup of app succeeded and was verified",
    "@bob presses Approve",
    "Restored and verified",
    "app_copy identical to the source (schema and every row): yes",
    "Restore drill of app passed",
    "Retention dry run",
    "Backup verification checklist",
    "Backup of legacy failed",
    "@bob: please look at this alert and press Acknowledge.",
    "You are on the escalation path as DevOps Lead",
    "Acknowledged by @bob",
    "the manifest's sha256 is the same: yes",
    "app-home.png: the Home view (",
    "✅ App Home published and the chart uploaded as a PNG",
    "app_restored identical to the source (schema and every row): yes",
    "serve exited with 0",
]

RAW_MARKUP = {
    "a user mention": re.compile(r"<@U"),
    "a channel mention": re.compile(r"<#C|#C0DEMO"),
    "a special mention": re.compile(r"<!"),
    "a link": re.compile(r"<https?:|<mailto:"),
    "an emoji shortcode": re.compile(r":[a-z_]+:"),
    "bold markers": re.compile(r"(?<![\w*])\*[^\s*](?:[^*\n]*[^\s*])?\*(?![\w*])"),
    "italic markers": re.compile(r"(?<![\w_])_[^\s_](?:[^_\n]*[^\s_])?_(?![\w_])"),
    "strike markers": re.compile(r"(?<![\w~])~[^\s~](?:[^~\n]*[^\s~])?~(?![\w~])"),
    "code backticks": re.compile(r"`"),
    "an HTML escape": re.compile(r"&(?:lt|gt|amp);"),
}


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
) -> subprocess.CompletedProcess[str]:
    workdir: Path = tmp_path_factory.mktemp("demo-run") / ".demo"
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "backupbot.devkit.demo", str(workdir)],
        cwd=workdir.parent,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=240,  # a hang guard, not a speed target
        check=False,
    )


def test_the_demo_succeeds_and_tells_the_whole_story(
    demo: subprocess.CompletedProcess[str],
) -> None:
    result = demo
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    missing = [s for s in SECTIONS if s not in result.stdout]
    assert not missing, f"{missing} not in the output:\n{result.stdout}"
    assert "❌" not in result.stdout.split("=== done in")[-1], "a check did not hold"


def test_the_demo_prints_what_people_see_not_slack_markup(
    demo: subprocess.CompletedProcess[str],
) -> None:
    output = demo.stdout
    found = {
        what: sorted({m.group() for m in pattern.finditer(output)})
        for what, pattern in RAW_MARKUP.items()
    }
    leftovers = {what: hits for what, hits in found.items() if hits}
    assert not leftovers, leftovers
    for emoji in ("✅", "📋", "🚨", "⏪"):
        assert emoji in output
