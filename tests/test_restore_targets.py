"""`targets:`: the settings' rules, where `--into NAME` writes, the connection a stored
target name resolves to, and the "last test-restored" line of protected requests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backupbot.bot.cli.render.restore import tested_line as cli_line
from backupbot.bot.slack.blocks.restore_tested import tested_lines as slack_lines
from backupbot.commands.restore_lookup import choose_target
from backupbot.commands.restore_request import last_tested
from backupbot.commands.restore_targets import TargetGone, Targets
from backupbot.errors import ConfigError, UsageError
from backupbot.settings import Settings, parse_settings
from tests.restore_records import restore_record

APP = "postgresql://u:secret@db.example.com:5432/app"
STAGING = "postgresql://s:hidden@staging.example.com:6543/stage"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def settings(**extra: Any) -> Settings:
    raw = {
        "storage": {"local": {"path": "/tmp/backups"}},
        "databases": [{"name": "app", "url": APP}],
        "targets": {"staging": {"url": STAGING}},
        **extra,
    }
    return parse_settings(raw, {})


def test_a_target_is_resolved_with_its_own_server_and_credentials() -> None:
    s = settings(drill={"target": "staging"})
    targets = Targets(s.targets, {"app": s.drill_target("app")})
    db = s.databases[0]
    choice = choose_target(db, "staging", False, NOW, targets)
    assert (choice.mode, choice.dbname, choice.target_name) == ("into", "stage", "staging")
    conn = targets.conn(db, choice.target_name, choice.dbname)
    assert (conn.host, conn.port, conn.dbname, conn.user) == (
        "staging.example.com",
        "6543",
        "stage",
        "s",
    )
    # A drill's scratch database: the target's server, never the target's database.
    scratch = targets.conn(db, targets.drill_target("app"), "backupbot_drill_app_x")
    assert scratch.where == "staging.example.com:6543/backupbot_drill_app_x"
    # Any other name is a database on the source's own server, as before.
    other = choose_target(db, "app_copy", False, NOW, targets)
    assert other.target_name is None
    assert targets.conn(db, None, other.dbname).where == "db.example.com:5432/app_copy"


def test_a_target_removed_from_the_config_is_a_clear_failure() -> None:
    db = settings().databases[0]
    with pytest.raises(TargetGone, match="target staging is no longer configured"):
        Targets().conn(db, "staging", "stage")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"targets": {"app": {"url": STAGING}}}, "target 'app' has the name of a configured"),
        ({"targets": {"x": {"url": APP}}}, "target 'x' is the configured database 'app'"),
        ({"targets": {"bad name": {"url": STAGING}}}, "target 'bad name': use letters"),
        ({"targets": {"x": {"url": "mysql://h/db"}}}, "must be a postgresql://"),
        ({"drill": {"target": "nope"}}, "drill.target names no target under targets: (staging)"),
    ],
)
def test_targets_that_could_write_a_source_or_do_not_exist_are_config_errors(
    extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        settings(**extra)
    assert message in str(raised.value)
    assert "secret" not in str(raised.value) and "hidden" not in str(raised.value)


def test_a_database_drill_target_overrides_the_default() -> None:
    s = settings(databases=[{"name": "app", "url": APP, "drill_target": "staging"}])
    assert s.drill_target("app") == "staging" and s.drill.target is None
    with pytest.raises(ConfigError, match="database 'app' drill_target names no target"):
        settings(databases=[{"name": "app", "url": APP, "drill_target": "qa"}])


def test_in_place_and_into_together_are_still_refused() -> None:
    db = settings().databases[0]
    with pytest.raises(UsageError, match="Choose one"):
        choose_target(db, "staging", True, NOW, Targets(settings().targets))


def _test_restore(backup_id: str, mode: str, target: str | None, day: int) -> Any:
    return restore_record(
        NOW,
        backup_id=backup_id,
        mode=mode,
        target_name=target,
        status="succeeded",
        finished_at=datetime(2026, 11, day, 9, 30, tzinfo=UTC),
    )


def test_last_tested_names_the_same_backup_or_else_the_latest_other_one() -> None:
    tests = [
        _test_restore("bbbb2222", "drill", None, 20),
        _test_restore("aaaa1111", "into", "staging", 10),
    ]
    same = last_tested(tests, "aaaa1111")
    assert same["backup"]["how"] == "target" and same["backup"]["target"] == "staging"
    assert same["any"] is None
    assert "on staging on 2026-11-10 09:30 UTC" in cli_line(same, "aaaa1111")

    never = last_tested(tests, "cccc3333")
    assert never["backup"] is None and never["any"]["backup_id"] == "bbbb2222"
    line = cli_line(never, "cccc3333")
    assert line.startswith("warning: backup cccc3333 has never been restored in staging")
    assert "bbbb2222, in a restore drill on 2026-11-20 09:30 UTC" in line

    nothing = last_tested([], "cccc3333")
    assert nothing == {"backup": None, "any": None}
    [slack] = slack_lines(nothing, "cccc3333")
    assert ":warning:" in slack and "No backup of this database has been test-restored" in slack


def test_the_slack_line_escapes_a_target_name() -> None:
    tested = {
        "backup": {"how": "target", "target": "<!channel>", "at": NOW.isoformat()},
        "any": None,
    }
    [line] = slack_lines(tested, "aaaa1111")
    assert "<!channel>" not in line and "&lt;!channel&gt;" in line
    assert slack_lines(None, "aaaa1111") == []
