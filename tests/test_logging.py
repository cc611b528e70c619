"""Every log call in the code runs under the production set-up (conftest configures JSON
at DEBUG for every test); these tests cover what the suite's own calls cannot prove."""

from __future__ import annotations

import ast
import io
import json
import logging
from pathlib import Path

import backupbot
from backupbot.bot.logging_setup import JsonFormatter, configure_logging
from backupbot.logsafe import RESERVED, SafeLogger

PACKAGE = Path(backupbot.__file__).parent
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}


def _extra_keys() -> dict[str, str]:
    """Every literal key passed as `extra={...}` in the package: key -> where."""
    keys: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOG_METHODS
            ):
                continue
            for kw in node.keywords:
                if kw.arg == "extra":
                    assert isinstance(kw.value, ast.Dict), f"{path}:{node.lineno}: use a dict"
                    for k in kw.value.keys:
                        assert isinstance(k, ast.Constant), f"{path}:{node.lineno}: literal keys"
                        keys[str(k.value)] = f"{path.relative_to(PACKAGE)}:{node.lineno}"
    return keys


def test_no_extra_key_in_the_code_collides_with_a_log_record_attribute() -> None:
    keys = _extra_keys()
    assert keys, "expected the code to log with extra= somewhere"
    clashes = {k: where for k, where in keys.items() if k in RESERVED}
    assert clashes == {}


def test_a_record_with_every_extra_key_the_code_uses_is_formatted_as_json() -> None:
    keys = _extra_keys()
    record = logging.getLogger("backupbot.test").makeRecord(
        "backupbot.test", logging.INFO, __file__, 1, "m %s", ("x",), None,
        extra={k: [k, 1] for k in keys},
    )  # fmt: skip
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "m x"
    assert {k: line[k] for k in keys} == {k: [k, 1] for k in keys}


def test_backupbot_loggers_rename_colliding_extra_keys_instead_of_raising() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "json")
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    try:
        log = logging.getLogger("backupbot.storage.pg_dump")
        assert isinstance(log, SafeLogger)
        log.info("starting", extra={"args": ["pg_dump"], "msg": "m", "target": "h:5432/db"})
    finally:
        root.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["message"] == "starting"
    assert line["extra_args"] == ["pg_dump"]
    assert line["extra_msg"] == "m"
    assert line["target"] == "h:5432/db"


def test_every_backupbot_module_logger_is_a_safe_logger() -> None:
    import backupbot.bot.cli.main  # noqa: F401  (imports the whole program)

    loggers = {
        name: logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if name.startswith("backupbot.") and isinstance(logger, logging.Logger)
    }
    assert len(loggers) > 10
    assert [n for n, lg in loggers.items() if not isinstance(lg, SafeLogger)] == []
