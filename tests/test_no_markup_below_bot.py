"""`commands/` and `storage/` speak facts: no Slack markup in their string literals.

Docstrings (and the attribute docstrings after an assignment) are documentation and may
quote code; every other string literal is read for mentions (`<@`, `<!`, `<#`), links
(`<http…|…>`), emoji codes, `*bold*` and backtick code spans. Front ends add markup
(`bot/slack/kit.py`), or plain text (`bot/cli/`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "backupbot"
MARKUP = re.compile(
    r"<[@!#]"  # a mention or a channel link
    r"|<https?:"  # a link
    r"|(?<![\w:]):[a-z][a-z0-9_+-]+:(?![\w/])"  # an emoji code
    r"|(?<![\w*])\*[A-Za-z][^*\n]*[A-Za-z.]\*(?![\w*])"  # *bold*
    r"|`"  # a code span
)


def _documentation(tree: ast.Module) -> set[int]:
    """ids of docstring constants: the first statement of a module, class or function,
    and a string statement right after an assignment (an attribute docstring)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for i, stmt in enumerate(body):
            is_string = isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            after_assign = i > 0 and isinstance(body[i - 1], ast.Assign | ast.AnnAssign)
            if is_string and (i == 0 or after_assign):
                found.add(id(stmt.value))
    return found


def _markup_in(path: Path, base: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text())
    docs = _documentation(tree)
    return [
        f"{path.relative_to(base)}:{node.lineno}: {node.value[:80]!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docs
        and MARKUP.search(node.value)
    ]


def test_commands_and_storage_strings_carry_no_slack_markup() -> None:
    found = [
        hit
        for package in ("commands", "storage")
        for path in sorted((ROOT / package).rglob("*.py"))
        for hit in _markup_in(path)
    ]
    assert found == [], "Slack markup below bot/:\n" + "\n".join(found)


def test_the_check_finds_markup_it_is_meant_to_find(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""A `docstring` may quote code."""\n'
        'A = f"run `/backup now {db}`"\n'
        'B = "<@U0ALICE> approved"\n'
        'C = ":warning: careful"\n'
        'D = "*Backup failed*"\n'
        'E = "at 02:00:30 UTC, 3 * 4 = 12, pattern *:*:*:*:"\n'
    )
    hits = _markup_in(sample, tmp_path)
    assert {int(h.split(":")[1]) for h in hits} == {2, 3, 4, 5}  # not the docstring, not E
