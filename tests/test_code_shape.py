"""Small modules and short functions: no module in `backupbot/` over `MAX_MODULE_LINES`
lines, no function (its `def` line to its last line, docstring included) over
`MAX_FUNCTION_LINES`.

What is still over is listed below with the reason; the lists only shrink: a listed
module or function that is now within the limit (or gone) fails the test until it is
taken off the list.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "backupbot"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Modules still over MAX_MODULE_LINES: path (from the repository root) -> why.
LONG_MODULES: dict[str, str] = {
    "backupbot/devkit/demo.py": "devkit: the demo script; not yet split",
    "backupbot/devkit/pgcluster.py": "devkit: the throwaway PostgreSQL cluster; not yet split",
    "backupbot/devkit/s3_fault_proxy.py": "devkit: the S3 fault proxy; not yet split",
}

# Functions still over MAX_FUNCTION_LINES: "path::qualified.name" -> why.
LONG_FUNCTIONS: dict[str, str] = {
    "backupbot/devkit/demo.py::run": "devkit: the demo's script, one step after another",
    "backupbot/devkit/s3_fault_proxy.py::S3FaultProxy._handler_class": (
        "devkit: one request handler class, defined in place"
    ),
    "backupbot/devkit/sample_data.py::_schema": "devkit: the sample schema, one SQL text",
    "backupbot/storage/migrations/versions/0003_schedules.py::upgrade": (
        "a migration: written once, never edited (the lead owns migrations)"
    ),
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def _functions(tree: ast.Module) -> list[tuple[str, int]]:
    """(qualified name, lines) of every function and method, nested ones included."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                assert child.end_lineno is not None
                found.append((name, child.end_lineno - child.lineno + 1))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def _module_lines() -> dict[str, int]:
    return {_name(p): len(p.read_text().splitlines()) for p in _modules()}


def _function_lines() -> dict[str, int]:
    lines: dict[str, int] = {}
    for path in _modules():
        for name, count in _functions(ast.parse(path.read_text(), str(path))):
            lines[f"{_name(path)}::{name}"] = count
    return lines


def test_the_package_is_where_the_test_looks() -> None:
    assert len(_modules()) > 50
    assert any(n > 0 for n in _function_lines().values())


def test_no_module_is_over_the_limit_unless_listed() -> None:
    over = {p: n for p, n in _module_lines().items() if n > MAX_MODULE_LINES}
    unlisted = {p: n for p, n in over.items() if p not in LONG_MODULES}
    assert not unlisted, f"modules over {MAX_MODULE_LINES} lines; split them: {unlisted}"


def test_no_function_is_over_the_limit_unless_listed() -> None:
    over = {f: n for f, n in _function_lines().items() if n > MAX_FUNCTION_LINES}
    unlisted = {f: n for f, n in over.items() if f not in LONG_FUNCTIONS}
    assert not unlisted, f"functions over {MAX_FUNCTION_LINES} lines; split them: {unlisted}"


def test_listed_modules_are_still_over_the_limit() -> None:
    lines = _module_lines()
    within = sorted(p for p in LONG_MODULES if lines.get(p, 0) <= MAX_MODULE_LINES)
    assert not within, f"now within the limit or gone; take them off LONG_MODULES: {within}"


def test_listed_functions_are_still_over_the_limit() -> None:
    lines = _function_lines()
    within = sorted(f for f in LONG_FUNCTIONS if lines.get(f, 0) <= MAX_FUNCTION_LINES)
    assert not within, f"now within the limit or gone; take them off LONG_FUNCTIONS: {within}"


def test_the_function_count_includes_methods_nested_functions_and_docstrings() -> None:
    source = (
        "class A:\n"
        "    def m(self):\n"
        '        """Doc."""\n'
        "        def inner():\n"
        "            return 1\n"
        "        return inner\n"
        "async def f():\n"
        "    pass\n"
    )
    assert _functions(ast.parse(source)) == [("A.m", 5), ("A.m.inner", 2), ("f", 2)]
