"""The configuration model: defaults, `${VAR}` interpolation, and errors that name the key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backupbot.commands.schedule import ScheduledJob
from backupbot.errors import ConfigError
from backupbot.settings import (
    SlackCredentials,
    config_path,
    load_settings,
    parse_settings,
)

PASSWORD = "Sup3r-s3cret-pw"
URL = f"postgresql://alice:{PASSWORD}@db.example.com:5432/app"
STORAGE = {"local": {"path": "/srv/backups"}}


def db(**overrides: Any) -> dict[str, Any]:
    return {"name": "app", "url": URL, **overrides}


def config_error(raw: Any, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_settings(raw, environ or {})
    return info.value


# --- defaults and interpolation ---------------------------------------------------------


def test_minimal_config_gets_documented_defaults() -> None:
    settings = parse_settings({"storage": STORAGE, "databases": [db()]}, {})

    assert settings.storage.local is not None
    assert settings.storage.local.path == Path("/srv/backups")
    assert settings.storage.s3 is None
    assert settings.state_url == f"sqlite:///{Path.cwd() / 'backupbot.db'}"  # parse: cwd
    assert settings.slack is None
    [database] = settings.databases
    assert database.name == "app"
    assert database.url.get_secret_value() == URL
    assert database.provider == "generic"
    assert database.schedule == "0 2 * * *"
    assert database.timezone == "UTC"
    assert database.retention_days == 30
    assert database.protected is False
    assert settings.database_names == ["app"]
    assert settings.database("app") is database
    assert settings.database("nope") is None


def test_env_var_is_substituted_into_a_value() -> None:
    settings = parse_settings(
        {"storage": STORAGE, "databases": [db(url="${APP_DB_URL}")]}, {"APP_DB_URL": URL}
    )

    assert settings.databases[0].url.get_secret_value() == URL


def test_env_var_is_substituted_inside_a_longer_string() -> None:
    raw = {
        "storage": STORAGE,
        "databases": [db(url="postgresql://alice:${PGPW}@db.example.com/app")],
    }

    settings = parse_settings(raw, {"PGPW": PASSWORD})

    assert settings.databases[0].url.get_secret_value() == URL.replace(":5432", "")


def test_env_default_is_used_when_variable_is_unset() -> None:
    raw = {"storage": STORAGE, "databases": [db(url="${APP_DB_URL:-" + URL + "}")]}

    settings = parse_settings(raw, {})

    assert settings.databases[0].url.get_secret_value() == URL


def test_env_default_is_ignored_when_variable_is_set() -> None:
    raw = {
        "storage": STORAGE,
        "databases": [db(url="${APP_DB_URL:-postgresql://other@elsewhere/other}")],
    }

    settings = parse_settings(raw, {"APP_DB_URL": URL})

    assert settings.databases[0].url.get_secret_value() == URL


def test_env_interpolation_reaches_nested_sections() -> None:
    raw = {
        "databases": [db()],
        "slack": {"channel": "${CHANNEL}", "approvers": ["${APPROVER:-U0DEFAULT}"]},
        "storage": {"s3": {"bucket": "${BUCKET}", "prefix": "prod"}},
    }

    settings = parse_settings(raw, {"CHANNEL": "C0OPS", "BUCKET": "team-backups"})

    assert settings.slack is not None
    assert settings.slack.channel == "C0OPS"
    assert settings.slack.approvers == ["U0DEFAULT"]
    assert settings.storage.s3 is not None
    assert settings.storage.s3.bucket == "team-backups"
    assert settings.storage.s3.prefix == "prod/"


def test_missing_env_var_names_key_path_and_variable() -> None:
    err = config_error({"storage": STORAGE, "databases": [db(url="${APP_DB_URL}")]})

    assert err.problems == [
        "databases[0].url: environment variable APP_DB_URL is not set; export it or use "
        "${APP_DB_URL:-default}"
    ]
    assert "databases[0].url" in str(err)
    assert "APP_DB_URL" in str(err)


def test_missing_env_var_in_second_database_names_its_index() -> None:
    raw = {"storage": STORAGE, "databases": [db(), db(name="billing", url="${BILLING_URL}")]}

    err = config_error(raw)

    assert "databases[1].url" in str(err)
    assert "BILLING_URL" in str(err)


# --- unknown keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "where", "suggestion"),
    [
        ({"storage": STORAGE, "databses": [db()]}, "databses", "databases"),
        ({"storage": STORAGE, "databases": [db()], "loging": {}}, "loging", "logging"),
        (
            {"databases": [db()], "storage": {"s3": {"bucket": "b-1", "regoin": "eu-west-1"}}},
            "storage.s3.regoin",
            "region",
        ),
        (
            {
                "storage": STORAGE,
                "databases": [db()],
                "slack": {"channel": "C0OPS", "aprovers": ["U1"]},
            },
            "slack.aprovers",
            "approvers",
        ),
        (
            {"storage": STORAGE, "databases": [db(shedule="0 3 * * *")]},
            "databases[0].shedule",
            "schedule",
        ),
        ({"databases": [db()], "storage": {"local": {"pth": "/x"}}}, "storage.local.pth", "path"),
        (
            {"storage": STORAGE, "databases": [db()], "backup": {"compresion_level": 5}},
            "backup.compresion_level",
            "compression_level",
        ),
    ],
)
def test_misspelled_key_is_named_with_did_you_mean_hint(
    raw: dict[str, Any], where: str, suggestion: str
) -> None:
    err = config_error(raw)

    assert f"{where}: unknown key; did you mean {suggestion!r}?" in err.problems


def test_unknown_key_without_close_match_lists_known_keys() -> None:
    err = config_error({"storage": STORAGE, "databases": [db(colour="blue")]})

    [problem] = err.problems
    assert problem.startswith("databases[0].colour: unknown key; known keys: ")
    for key in ("name", "url", "provider", "schedule", "timezone", "retention_days"):
        assert key in problem


def test_unknown_top_level_key_without_close_match_lists_top_level_keys() -> None:
    err = config_error({"storage": STORAGE, "databases": [db()], "zzzz": 1})

    [problem] = err.problems
    assert problem.startswith("zzzz: unknown key; known keys: ")
    assert "databases" in problem
    assert "storage" in problem


# --- invalid values -------------------------------------------------------------------------


def test_both_local_and_s3_storage_is_an_error() -> None:
    raw = {"databases": [db()], "storage": {"local": {"path": "/b"}, "s3": {"bucket": "b-1"}}}

    err = config_error(raw)

    assert err.problems == ["storage: set exactly one of storage.local or storage.s3"]


def test_empty_storage_section_is_an_error() -> None:
    err = config_error({"databases": [db()], "storage": {}})

    assert err.problems == ["storage: set exactly one of storage.local or storage.s3"]


@pytest.mark.parametrize(
    ("database", "where", "fragment"),
    [
        (db(provider="heroku"), "databases[0].provider", "must be one of"),
        (db(schedule="every night"), "databases[0].schedule", "cron"),
        (db(schedule="0 2 * *"), "databases[0].schedule", "cron"),
        (db(timezone="Mars/Olympus_Mons"), "databases[0].timezone", "time zone"),
        (
            db(url=f"mysql://alice:{PASSWORD}@db.example.com/app"),
            "databases[0].url",
            "postgresql://",
        ),
        (
            db(url=f"postgresql://alice:{PASSWORD}@db.example.com:5432"),
            "databases[0].url",
            "must name the database",
        ),
        (
            db(url=f"postgresql://alice:{PASSWORD}@db.example.com:5432/"),
            "databases[0].url",
            "must name the database",
        ),
        (db(name="app/x"), "databases[0].name", "letters, digits"),
        (db(name="-app"), "databases[0].name", "starting with a letter or digit"),
        (db(retention_days=0), "databases[0].retention_days", "greater than or equal to 1"),
    ],
)
def test_invalid_database_value_is_reported_at_its_key_path(
    database: dict[str, Any], where: str, fragment: str
) -> None:
    err = config_error({"storage": STORAGE, "databases": [database]})

    [problem] = err.problems
    assert problem.startswith(f"{where}: ")
    assert fragment in problem
    assert PASSWORD not in str(err)


def test_bad_value_in_second_database_names_its_index() -> None:
    err = config_error(
        {"storage": STORAGE, "databases": [db(), db(name="billing", provider="aws")]}
    )

    assert [p.split(":")[0] for p in err.problems] == ["databases[1].provider"]


def test_duplicate_database_names_are_an_error() -> None:
    err = config_error({"storage": STORAGE, "databases": [db(), db()]})

    assert err.problems == ["databases: database name 'app' appears twice; names must be unique"]


def test_missing_databases_list_is_required() -> None:
    err = config_error({"storage": {"local": {}}})

    assert err.problems == ["databases: required; add it"]


def test_empty_databases_list_is_an_error() -> None:
    err = config_error({"storage": STORAGE, "databases": []})

    [problem] = err.problems
    assert problem.startswith("databases: ")


def test_non_mapping_document_is_an_error() -> None:
    err = config_error(["databases"])

    assert "YAML mapping" in str(err)


def test_several_problems_are_all_reported() -> None:
    err = config_error(
        {"storage": STORAGE, "databases": [db(provider="aws", timezone="Nowhere/Here")], "x": 1}
    )

    wheres = sorted(p.split(":")[0] for p in err.problems)
    assert wheres == ["databases[0].provider", "databases[0].timezone", "x"]


# --- secrets --------------------------------------------------------------------------------


def test_database_password_is_hidden_in_settings_repr_and_str() -> None:
    settings = parse_settings({"storage": STORAGE, "databases": [db()]}, {})

    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    assert PASSWORD not in repr(settings.databases[0])


def test_s3_keys_are_hidden_in_settings_repr() -> None:
    raw = {
        "databases": [db()],
        "storage": {
            "s3": {
                "bucket": "b-1",
                "access_key_id": "AKIAEXAMPLEKEYID",
                "secret_access_key": "wJalrXUtnFEMI-secret",
            }
        },
    }

    settings = parse_settings(raw, {})

    assert "AKIAEXAMPLEKEYID" not in repr(settings)
    assert "wJalrXUtnFEMI-secret" not in repr(settings)
    assert settings.storage.s3 is not None
    assert settings.storage.s3.secret_access_key is not None
    assert settings.storage.s3.secret_access_key.get_secret_value() == "wJalrXUtnFEMI-secret"


@pytest.mark.parametrize(
    "database",
    [
        db(url=f"mysql://alice:{PASSWORD}@db.example.com/app"),
        db(url=f"postgresql://alice:{PASSWORD}@db.example.com"),
        db(url=f"postgresql://alice:{PASSWORD}@[db.example.com/app"),
        db(provider="heroku"),
        db(name="app/x"),
        db(extra_key=URL),
    ],
)
def test_database_password_never_appears_in_config_error(database: dict[str, Any]) -> None:
    err = config_error({"storage": STORAGE, "databases": [database, database]})

    assert PASSWORD not in str(err)
    assert all(PASSWORD not in p for p in err.problems)


def test_interpolated_password_never_appears_in_config_error() -> None:
    raw = {"storage": STORAGE, "databases": [db(url="mysql://alice:${PW}@db.example.com/app")]}

    err = config_error(raw, {"PW": PASSWORD})

    assert "databases[0].url" in str(err)
    assert PASSWORD not in str(err)


def test_password_with_nfkc_unsafe_character_never_appears_in_config_error() -> None:
    # Regression: for a password containing a character whose NFKC form is one of "/?#@:" (here
    # U+FF03 FULLWIDTH NUMBER SIGN), urlsplit() raises ValueError("netloc 'alice:pw...@host'
    # contains invalid characters under NFKC normalization"), and
    # DatabaseSettings._valid_url lets that message through, so the whole netloc, password
    # included, ends up in str(ConfigError). The message must name the key, not the secret.
    password = "pw\uff03" + PASSWORD
    url = f"postgresql://alice:{password}@db.example.com/app"

    err = config_error({"storage": STORAGE, "databases": [db(url=url)]})

    assert "databases[0].url" in str(err)
    assert password not in str(err)
    assert PASSWORD not in str(err)


# --- loading files --------------------------------------------------------------------------


def test_load_settings_on_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    path = tmp_path / "absent.yml"

    with pytest.raises(ConfigError) as info:
        load_settings(path, {})

    assert info.value.source == str(path)
    assert f"{path} does not exist" in str(info.value)
    assert "--config" in str(info.value)


def test_load_settings_on_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "backupbot.yml"
    path.write_text("state_url: sqlite:///x.db\ndatabases:\n  - name: app: bad\n")

    with pytest.raises(ConfigError) as info:
        load_settings(path, {})

    [problem] = info.value.problems
    assert problem.startswith("not valid YAML at line 3, column ")
    assert str(path) in str(info.value)


def test_load_settings_on_empty_file_asks_for_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "backupbot.yml"
    path.write_text("")

    with pytest.raises(ConfigError) as info:
        load_settings(path, {})

    assert "databases:" in str(info.value)


def test_load_settings_validation_errors_name_the_file_as_source(tmp_path: Path) -> None:
    path = tmp_path / "backupbot.yml"
    path.write_text("databases:\n  - name: app\n    url: mysql://h/app\n")

    with pytest.raises(ConfigError) as info:
        load_settings(path, {})

    assert info.value.source == str(path)
    assert str(info.value).startswith(f"{path} is invalid:")
    assert "databases[0].url" in str(info.value)


def test_load_settings_reads_yaml_and_interpolates_from_given_environ(tmp_path: Path) -> None:
    path = tmp_path / "backupbot.yml"
    path.write_text(
        "storage:\n  local:\n    path: /srv/backups\n"
        "databases:\n  - name: app\n    url: ${APP_DB_URL}\n    provider: neon\n"
    )

    settings = load_settings(path, {"APP_DB_URL": URL})

    assert settings.storage.local is not None
    assert settings.storage.local.path == Path("/srv/backups")
    assert settings.databases[0].provider == "neon"
    # Neon accepts only TLS: a URL without sslmode gets require (settings/connection_advice.py)
    assert settings.databases[0].url.get_secret_value() == URL + "?sslmode=require"


def test_load_settings_errors_name_the_file_as_source(tmp_path: Path) -> None:
    # Regression: parse_settings() once called interpolate() without `source`, so a missing
    # environment variable is reported as "configuration is invalid:" (ConfigError.source ==
    # "configuration") while every other problem in the same file names the file's path.
    path = tmp_path / "backupbot.yml"
    path.write_text("databases:\n  - name: app\n    url: ${NOT_SET}\n")

    with pytest.raises(ConfigError) as info:
        load_settings(path, {})

    assert info.value.source == str(path)
    assert str(info.value).startswith(f"{path} is invalid:")
    assert "databases[0].url" in str(info.value)
    assert "NOT_SET" in str(info.value)


# --- config path ---------------------------------------------------------------------------


def test_config_path_prefers_cli_flag_over_environment() -> None:
    path = config_path("/etc/cli.yml", {"BACKUPBOT_CONFIG": "/etc/env.yml"})

    assert path == Path("/etc/cli.yml")


def test_config_path_uses_environment_when_no_flag() -> None:
    assert config_path(None, {"BACKUPBOT_CONFIG": "/etc/env.yml"}) == Path("/etc/env.yml")


def test_config_path_defaults_to_backupbot_yml_in_working_directory() -> None:
    assert config_path(None, {}) == Path("backupbot.yml")


def test_config_path_treats_empty_environment_value_as_unset() -> None:
    assert config_path(None, {"BACKUPBOT_CONFIG": ""}) == Path("backupbot.yml")


# --- Slack credentials -----------------------------------------------------------------


def test_slack_credentials_read_from_environment() -> None:
    creds = SlackCredentials.from_env(
        {
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "sign-1",
            "SLACK_API_URL": "http://127.0.0.1:9/api/",
        }
    )

    assert creds.bot_token is not None
    assert creds.bot_token.get_secret_value() == "xoxb-1"
    assert creds.signing_secret is not None
    assert creds.signing_secret.get_secret_value() == "sign-1"
    assert creds.app_token is None
    assert creds.api_url == "http://127.0.0.1:9/api/"
    assert creds.socket_mode is False
    assert creds.problems_for_serving() == []


def test_slack_credentials_hide_tokens_in_repr() -> None:
    creds = SlackCredentials.from_env(
        {"SLACK_BOT_TOKEN": "xoxb-very-secret", "SLACK_APP_TOKEN": "xapp-very-secret"}
    )

    assert "xoxb-very-secret" not in repr(creds)
    assert "xapp-very-secret" not in repr(creds)


def test_slack_app_token_selects_socket_mode_without_signing_secret() -> None:
    creds = SlackCredentials.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"})

    assert creds.socket_mode is True
    assert creds.problems_for_serving() == []


def test_slack_empty_variables_count_as_unset() -> None:
    creds = SlackCredentials.from_env(
        {
            "SLACK_BOT_TOKEN": "",
            "SLACK_SIGNING_SECRET": "",
            "SLACK_APP_TOKEN": "",
            "SLACK_API_URL": "",
        }
    )

    assert creds.bot_token is None
    assert creds.signing_secret is None
    assert creds.app_token is None
    assert creds.api_url is None
    assert creds.socket_mode is False


def test_serving_without_any_slack_credentials_lists_both_problems() -> None:
    problems = SlackCredentials.from_env({}).problems_for_serving()

    assert len(problems) == 2
    assert "SLACK_BOT_TOKEN" in problems[0]
    assert "SLACK_APP_TOKEN" in problems[1]
    assert "SLACK_SIGNING_SECRET" in problems[1]


def test_serving_without_bot_token_is_a_problem_even_with_signing_secret() -> None:
    problems = SlackCredentials.from_env({"SLACK_SIGNING_SECRET": "s"}).problems_for_serving()

    assert len(problems) == 1
    assert "SLACK_BOT_TOKEN" in problems[0]


def test_serving_with_bot_token_but_no_transport_secret_is_a_problem() -> None:
    problems = SlackCredentials.from_env({"SLACK_BOT_TOKEN": "xoxb-1"}).problems_for_serving()

    assert len(problems) == 1
    assert "SLACK_APP_TOKEN" in problems[0]
    assert "SLACK_SIGNING_SECRET" in problems[0]


# --- schedules, retention, checklist, escalation ------------------------------------------


def test_schedule_sections_get_the_runbook_defaults() -> None:
    settings = parse_settings({"storage": STORAGE, "databases": [db()]}, {})

    assert settings.schedules.grace_hours == 6
    assert settings.schedules.drill == "0 10 1-7 * mon"  # first Monday, 10:00
    assert settings.schedules.checklist == "0 9 1 * *"  # the 1st
    assert settings.retention.keep_labels == ["pre-deploy", "pre-restore"]
    assert settings.retention.keep_labeled_days == 90
    assert settings.checklist.remind_after_days == 3
    assert (settings.checklist.size_drop_ratio, settings.checklist.size_jump_ratio) == (0.5, 3.0)
    levels = settings.escalation.levels
    assert [(lvl.name, lvl.after_minutes, lvl.provider_support) for lvl in levels] == [
        ("DevOps Lead", 0, False),
        ("Database Admin", 15, False),
        ("Provider support", 30, True),
    ]


def test_a_bad_cron_in_schedules_names_its_key() -> None:
    err = config_error(
        {"storage": STORAGE, "databases": [db()], "schedules": {"drill": "first monday"}}
    )

    [problem] = err.problems
    assert problem.startswith("schedules.drill: not a cron expression (it has 2 fields); ")
    assert "5 fields" in problem and "6 with seconds first" in problem


def test_escalation_mentions_must_be_slack_ids() -> None:
    raw = {
        "storage": STORAGE,
        "databases": [db()],
        "escalation": {"levels": [{"name": "DevOps Lead", "mention": ["@alice"]}]},
    }
    err = config_error(raw)

    assert any(
        p.startswith("escalation.levels[0].mention:") and "'@alice'" in p for p in err.problems
    )


def test_escalation_levels_must_be_in_time_order() -> None:
    raw = {
        "storage": STORAGE,
        "databases": [db()],
        "escalation": {
            "levels": [
                {"name": "Database Admin", "after_minutes": 15},
                {"name": "DevOps Lead", "after_minutes": 0},
            ]
        },
    }
    err = config_error(raw)

    assert "escalation.levels: levels must be in order of after_minutes" in err.problems


# --- storage is required ------------------------------------------------------------------

MISSING_STORAGE = "storage: required; add storage.local.path (a directory) or storage.s3.bucket"


def test_a_config_without_storage_is_an_error_naming_the_key_and_the_fix() -> None:
    err = config_error({"databases": [db()]})

    assert err.problems == [MISSING_STORAGE]


def test_an_empty_storage_key_is_reported_like_a_missing_one() -> None:
    err = config_error({"storage": None, "databases": [db()]})

    assert err.problems == [MISSING_STORAGE]


def test_a_file_without_storage_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "backupbot.yml"
    path.write_text("databases:\n  - name: app\n    url: postgresql://u@h/app\n")

    with pytest.raises(ConfigError) as info:
        load_settings(path, {})

    assert info.value.problems == [MISSING_STORAGE]
    assert str(info.value) == f"{path} is invalid:\n  - {MISSING_STORAGE}"


# --- relative paths mean relative to the config file --------------------------------------


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_relative_paths_resolve_against_the_config_files_directory_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc" / "backupbot"
    config = _write(
        etc / "backupbot.yml",
        "state_url: sqlite:///state/bot.db\n"
        "storage:\n  local:\n    path: ./backups\n"
        "restore:\n  work_dir: ../scratch\n"
        "backup:\n  pg_bin_dirs: [pg/bin, /usr/lib/postgresql/16/bin]\n"
        "databases:\n  - name: app\n    url: postgresql://u@h/app\n",
    )
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)

    settings = load_settings(config, {})

    assert settings.config_file == config
    assert settings.base_dir == etc
    assert settings.state_url == f"sqlite:///{etc}/state/bot.db"
    assert settings.state_file == etc / "state" / "bot.db"
    assert settings.storage.local is not None
    assert settings.storage.local.path == etc / "backups"
    assert settings.restore.work_dir == tmp_path / "etc" / "scratch"
    assert settings.backup.pg_bin_dirs == [etc / "pg" / "bin", Path("/usr/lib/postgresql/16/bin")]


def test_the_default_state_database_lives_next_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _write(
        tmp_path / "conf" / "backupbot.yml",
        "storage:\n  local: {}\ndatabases:\n  - name: app\n    url: postgresql://u@h/app\n",
    )
    monkeypatch.chdir(tmp_path)

    settings = load_settings(Path("conf/backupbot.yml"), {})  # a relative --config too

    assert settings.config_file == config
    assert settings.state_url == f"sqlite:///{tmp_path}/conf/backupbot.db"
    assert settings.storage.local is not None
    assert settings.storage.local.path == tmp_path / "conf" / "backups"  # local: {} default
    assert settings.restore.work_dir is None  # unset stays unset: $TMPDIR


def test_tilde_expands_to_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    raw = {
        "state_url": "sqlite:///~/bot/state.db",
        "storage": {"local": {"path": "~/backups"}},
        "restore": {"work_dir": "~/work"},
        "backup": {"pg_bin_dirs": ["~/pg/bin"]},
        "databases": [db()],
    }

    settings = parse_settings(raw, {}, base_dir=tmp_path / "etc")

    home = tmp_path / "home"
    assert settings.state_url == f"sqlite:///{home}/bot/state.db"
    assert settings.storage.local is not None
    assert settings.storage.local.path == home / "backups"
    assert settings.restore.work_dir == home / "work"
    assert settings.backup.pg_bin_dirs == [home / "pg" / "bin"]


@pytest.mark.parametrize(
    ("state_url", "expected"),
    [
        ("sqlite:///rel.db", "sqlite:////etc/bb/rel.db"),
        ("sqlite:///./sub/rel.db", "sqlite:////etc/bb/sub/rel.db"),
        ("sqlite:///../var/rel.db", "sqlite:////etc/var/rel.db"),
        ("sqlite:////var/lib/backupbot/abs.db", "sqlite:////var/lib/backupbot/abs.db"),
        ("sqlite+pysqlite:///rel.db?timeout=5", "sqlite+pysqlite:////etc/bb/rel.db?timeout=5"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite:///file:rel.db?mode=ro&uri=true", "sqlite:///file:rel.db?mode=ro&uri=true"),
        ("postgresql+psycopg://bot:pw@db/backupbot", "postgresql+psycopg://bot:pw@db/backupbot"),
        ("postgresql://bot@db:5432/backupbot", "postgresql://bot@db:5432/backupbot"),
    ],
)
def test_only_a_relative_sqlite_file_in_state_url_is_resolved(
    state_url: str, expected: str
) -> None:
    raw = {"state_url": state_url, "storage": STORAGE, "databases": [db()]}

    settings = parse_settings(raw, {}, base_dir=Path("/etc/bb"))

    assert settings.state_url == expected


def test_state_file_is_none_unless_the_state_database_is_a_sqlite_file() -> None:
    def state_file(url: str) -> Path | None:
        raw = {"state_url": url, "storage": STORAGE, "databases": [db()]}
        return parse_settings(raw, {}, base_dir=Path("/etc/bb")).state_file

    assert state_file("sqlite:///rel.db") == Path("/etc/bb/rel.db")
    assert state_file("sqlite://") is None
    assert state_file("sqlite:///:memory:") is None
    assert state_file("postgresql+psycopg://bot:pw@db/backupbot") is None


def test_parse_settings_resolves_against_the_current_directory_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    raw = {"storage": {"local": {"path": "backups"}}, "databases": [db()]}

    settings = parse_settings(raw, {})

    assert settings.base_dir == tmp_path
    assert settings.config_file is None
    assert settings.storage.local is not None
    assert settings.storage.local.path == tmp_path / "backups"
    assert settings.state_url == f"sqlite:///{tmp_path}/backupbot.db"


def test_s3_settings_are_not_paths_and_are_left_alone() -> None:
    raw = {
        "storage": {"s3": {"bucket": "team-backups", "prefix": "prod", "endpoint_url": "http://x"}},
        "databases": [db()],
    }

    settings = parse_settings(raw, {}, base_dir=Path("/etc/bb"))

    assert settings.storage.s3 is not None
    assert (settings.storage.s3.bucket, settings.storage.s3.prefix) == ("team-backups", "prod/")
    assert settings.storage.s3.endpoint_url == "http://x"


# --- cron: 5 fields, or 6 with seconds first ----------------------------------------------

SUNDAY = datetime(2025, 6, 1, tzinfo=UTC)  # a Sunday, 00:00 UTC


def _fires(cron: str, start: datetime, days: int, timezone: str = "UTC") -> list[datetime]:
    job = ScheduledJob("backup:app", "backup", cron, timezone, "app")
    return job.fires_between(start, start + timedelta(days=days))


def test_a_six_field_cron_has_seconds_first() -> None:
    job = ScheduledJob("backup:app", "backup", "30 0 2 * * *")

    assert job.next_fire(SUNDAY) == SUNDAY.replace(hour=2, second=30)
    assert job.next_fire(SUNDAY.replace(hour=2, second=30)) == datetime(
        2025, 6, 2, 2, 0, 30, tzinfo=UTC
    )


def test_a_six_field_cron_can_fire_every_ten_seconds() -> None:
    fires = ScheduledJob("retention", "retention", "*/10 * * * * *").fires_between(
        SUNDAY, SUNDAY + timedelta(minutes=1)
    )

    assert fires == [SUNDAY + timedelta(seconds=s) for s in (10, 20, 30, 40, 50, 60)]


def test_five_fields_keep_their_meaning_at_second_zero() -> None:
    job = ScheduledJob("backup:app", "backup", "15 2 * * *")

    assert job.next_fire(SUNDAY) == SUNDAY.replace(hour=2, minute=15)
    assert _fires("15 2 * * *", SUNDAY, 21) == _fires("0 15 2 * * *", SUNDAY, 21)


def test_five_fields_give_the_same_trigger_as_from_crontab_when_weekdays_are_names() -> None:
    # The scheduler keeps a stored job (and its next run time) only while repr() is equal.
    from apscheduler.triggers.cron import CronTrigger

    for cron in ("0 2 * * *", "0 10 1-7 * mon", "0 9 1 * *", "*/15 8-18 * * mon-fri"):
        job = ScheduledJob("drill", "drill", cron)
        assert repr(job.trigger()) == repr(CronTrigger.from_crontab(cron, timezone="UTC"))


def test_weekday_zero_is_sunday_in_both_forms_over_several_weeks() -> None:
    five = _fires("0 2 * * 0", SUNDAY - timedelta(days=1), 35)
    six = _fires("0 0 2 * * 0", SUNDAY - timedelta(days=1), 35)

    assert five == six
    assert len(five) == 5
    assert all(f.strftime("%a %H:%M:%S") == "Sun 02:00:00" for f in five)
    for same in ("0 2 * * 7", "0 2 * * sun", "0 0 2 * * 7", "0 0 2 * * sun"):
        assert _fires(same, SUNDAY - timedelta(days=1), 35) == five


@pytest.mark.parametrize(
    ("weekdays", "expected"),
    [
        ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("mon-fri", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("6,0", ["Sat", "Sun"]),
        ("sat-sun", ["Sat", "Sun"]),
        ("5-7", ["Fri", "Sat", "Sun"]),
        ("*/2", ["Sun", "Tue", "Thu", "Sat"]),
        ("1-5/2", ["Mon", "Wed", "Fri"]),
        ("mon,3", ["Mon", "Wed"]),
        ("0-6", ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]),
    ],
)
def test_weekday_numbers_are_crons_in_both_forms(weekdays: str, expected: list[str]) -> None:
    for cron in (f"0 2 * * {weekdays}", f"0 0 2 * * {weekdays}"):
        fires = _fires(cron, SUNDAY - timedelta(seconds=1), 7)  # one week, Sunday first
        assert sorted(f.strftime("%a") for f in fires) == sorted(expected), cron


def test_a_six_field_cron_follows_its_time_zone() -> None:
    fires = _fires("30 0 2 * * *", SUNDAY, 2, timezone="Europe/Berlin")

    # 02:00:30 in Berlin (UTC+2 in June) is 00:00:30 UTC
    assert [f.astimezone(UTC) for f in fires] == [
        datetime(2025, 6, 1, 0, 0, 30, tzinfo=UTC),
        datetime(2025, 6, 2, 0, 0, 30, tzinfo=UTC),
    ]


def test_settings_accept_both_forms_everywhere_a_cron_goes() -> None:
    raw = {
        "storage": STORAGE,
        "databases": [db(schedule="30 0 2 * * *"), db(name="five", schedule="0 2 * * 0")],
        "schedules": {"retention": "*/10 * * * * *", "drill": "0 0 10 1-7 * mon"},
    }

    settings = parse_settings(raw, {})

    assert [d.schedule for d in settings.databases] == ["30 0 2 * * *", "0 2 * * 0"]
    assert settings.schedules.retention == "*/10 * * * * *"


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("0 2 * *", "it has 4 fields"),
        ("0 0 0 2 * * *", "it has 7 fields"),
        ("61 0 2 * * *", "61"),
        ("0 2 * * 8", "day of week '8'"),
        ("0 2 * * 5-1", "runs backwards"),
        ("0 2 * * */0", "the step must be a positive number"),
    ],
)
def test_a_bad_cron_names_its_key_the_reason_and_both_forms(cron: str, reason: str) -> None:
    err = config_error({"storage": STORAGE, "databases": [db(schedule=cron)]})

    [problem] = err.problems
    assert problem.startswith("databases[0].schedule: not a cron expression (")
    assert reason in problem
    assert problem.endswith(
        "use 5 fields 'minute hour day month weekday' (e.g. '0 2 * * *') or 6 with seconds "
        "first (e.g. '30 0 2 * * *')"
    )
