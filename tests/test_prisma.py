"""Reading `_prisma_migrations` as Prisma does, on a real table built with Prisma's DDL and
changed by Prisma's operations (`tests/prisma_world.py`): applied, failed and rolled back,
the head, `migrate resolve` in both directions; and the comparisons restores make."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from backupbot.bot.cli.render.migrations import view_lines
from backupbot.bot.slack.blocks.migrations import ahead_line, migrations_message
from backupbot.commands.migrations import (
    MigrationsView,
    ahead_of_backup,
    failed_warning,
    lacking,
    resolve_command,
    restore_facts,
)
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.pginspect import SnapshotSession
from backupbot.storage.prisma import APPLIED, FAILED, ROLLED_BACK, prisma_facts, read_migrations
from tests.prisma_world import PrismaRefused, create_table, deploy, resolve_applied
from tests.prisma_world import resolve_rolled_back as rolled_back

INIT, USERS, POSTS, BROKEN = (
    "20250101090000_init",
    "20250115120000_users",
    "20250201080000_posts",
    "20250301100000_add_index",
)


@pytest.fixture
def db(pg: Any) -> Iterator[psycopg.Connection[Any]]:
    """A fresh database with Prisma's table and three migrations applied by `deploy`."""
    name = f"prisma_{secrets.token_hex(4)}"
    url = pg.create_database(name)
    with psycopg.connect(url, autocommit=True) as conn:
        create_table(conn)
        deploy(conn, INIT, 'CREATE TABLE "User" (id int PRIMARY KEY)')
        deploy(conn, USERS, 'ALTER TABLE "User" ADD COLUMN email text')
        deploy(conn, POSTS, 'CREATE TABLE "Post" (id int PRIMARY KEY)')
        yield conn
    pg.drop_database(name)


def _states(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [(m.name, m.state) for m in read_migrations(conn) or []]


def test_a_database_without_prisma_has_no_history(pg: Any) -> None:
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        assert read_migrations(conn) is None
        assert prisma_facts(conn) is None


def test_applied_migrations_and_the_head_by_name_order(db: psycopg.Connection[Any]) -> None:
    assert _states(db) == [(INIT, APPLIED), (USERS, APPLIED), (POSTS, APPLIED)]
    facts = prisma_facts(db)
    assert facts is not None
    assert facts["migration_name"] == POSTS
    assert facts["applied"] == [INIT, USERS, POSTS]
    assert facts["failed"] == facts["rolled_back"] == []


def test_a_failed_migration_is_failed_and_not_the_head(db: psycopg.Connection[Any]) -> None:
    deploy(db, BROKEN, fails=True)
    assert _states(db)[-1] == (BROKEN, FAILED)
    facts = prisma_facts(db)
    assert facts is not None
    assert facts["failed"] == [BROKEN]
    assert facts["migration_name"] == POSTS, "a failed migration is not applied"


def test_resolve_rolled_back_marks_the_failed_row_and_redeploy_applies_it_again(
    db: psycopg.Connection[Any],
) -> None:
    deploy(db, BROKEN, fails=True)
    with pytest.raises(PrismaRefused, match="P3012"):
        rolled_back(db, POSTS)  # Prisma refuses it for a migration that did not fail
    with pytest.raises(PrismaRefused, match="P3011"):
        rolled_back(db, "20990101000000_never")
    rolled_back(db, BROKEN)
    facts = prisma_facts(db)
    assert facts is not None
    assert facts["failed"] == [] and facts["rolled_back"] == [BROKEN]
    assert facts["migration_name"] == POSTS
    deploy(db, BROKEN, 'CREATE INDEX "User_email_idx" ON "User"(email)')
    assert sorted(s for n, s in _states(db) if n == BROKEN) == [APPLIED, ROLLED_BACK]
    facts = prisma_facts(db)
    assert facts is not None
    assert facts["migration_name"] == BROKEN
    assert BROKEN in facts["applied"] and facts["rolled_back"] == [BROKEN]


def test_resolve_applied_rolls_back_the_failed_row_and_records_it_applied(
    db: psycopg.Connection[Any],
) -> None:
    deploy(db, BROKEN, fails=True)
    resolve_applied(db, BROKEN)
    with pytest.raises(PrismaRefused, match="P3008"):
        resolve_applied(db, BROKEN)
    facts = prisma_facts(db)
    assert facts is not None
    assert facts["failed"] == [] and facts["migration_name"] == BROKEN


def test_the_head_is_the_greatest_name_even_when_an_older_one_finished_later(
    db: psycopg.Connection[Any],
) -> None:
    """A baseline recorded with `resolve --applied` after newer ones finishes last; Prisma
    orders by name, and so does the head."""
    resolve_applied(db, "20240101000000_baseline")
    facts = prisma_facts(db)
    assert facts is not None and facts["migration_name"] == POSTS


def test_a_table_outside_public_is_found(pg: Any) -> None:
    name = f"prisma_{secrets.token_hex(4)}"
    url = pg.create_database(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app; SET search_path = app")
        create_table(conn)
        deploy(conn, INIT)
        conn.execute("SET search_path = public")
        facts = prisma_facts(conn)
    pg.drop_database(name)
    assert facts is not None and facts["migration_name"] == INIT


def test_the_backup_snapshot_records_the_whole_history(
    db: psycopg.Connection[Any], pg: Any
) -> None:
    deploy(db, BROKEN, fails=True)
    session = SnapshotSession(ConnInfo.from_url(pg.url(db.info.dbname)))
    try:
        facts = session.prisma_history()
    finally:
        session.close()
    assert facts is not None
    assert (facts["migration_name"], facts["failed"]) == (POSTS, [BROKEN])
    json.dumps(facts)  # it goes into the manifest as it is


def test_a_target_ahead_of_the_backup_names_the_migrations_the_backup_lacks() -> None:
    backup = {"migration_name": USERS, "applied": [INIT, USERS]}
    target = {"migration_name": BROKEN, "applied": [INIT, USERS, POSTS, BROKEN]}
    assert ahead_of_backup(backup, target) == [POSTS, BROKEN]
    assert ahead_of_backup(target, backup) == [], "a target behind the backup is not ahead"
    assert ahead_of_backup(backup, None) == [] and ahead_of_backup(None, None) == []
    assert ahead_of_backup(None, target) == [INIT, USERS, POSTS, BROKEN]
    old_manifest = {"migration_name": USERS}  # recorded before the applied list existed
    assert ahead_of_backup(old_manifest, target) == [POSTS, BROKEN]
    line = ahead_line({"prisma_ahead": [POSTS, BROKEN]})
    assert line is not None and f"`{POSTS}`, `{BROKEN}`" in line
    assert ahead_line({"prisma_ahead": []}) is None


def test_a_restore_reports_what_the_restored_database_lacks() -> None:
    before = {"migration_name": POSTS, "applied": [INIT, USERS, POSTS], "failed": [BROKEN]}
    after = {"migration_name": USERS, "applied": [INIT, USERS], "failed": []}
    assert lacking(before, after) == [POSTS]
    assert restore_facts(before, after) == {
        "before": POSTS,
        "after": USERS,
        "lacks": [POSTS],
        "failed_after": [],
    }
    assert restore_facts(None, after)["lacks"] == []


def test_the_resolve_command_is_quoted_for_a_shell() -> None:
    assert resolve_command(BROKEN) == f'npx prisma migrate resolve --rolled-back "{BROKEN}"'
    assert (
        resolve_command("x; rm -rf ~") == "npx prisma migrate resolve --rolled-back 'x; rm -rf ~'"
    )


def test_the_view_shows_failed_with_its_command_and_escapes_names(
    db: psycopg.Connection[Any],
) -> None:
    hostile = "20250401000000_<!channel>"
    deploy(db, hostile, fails=True)
    view = MigrationsView("app", read_migrations(db), None)
    message = migrations_message(view)
    text = json.dumps(message.blocks, ensure_ascii=False)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "head `20250201080000_posts` · 3 applied, 1 failed, 0 rolled back" in text
    assert "migrate resolve --rolled-back" in text
    lines = view_lines(view)
    assert lines[0] == "app: head 20250201080000_posts; 3 applied, 1 failed, 0 rolled back"
    assert any(line.startswith("failed       " + hostile) for line in lines)
    assert view.as_json()["resolve_commands"] == [resolve_command(hostile)]


def test_no_prisma_table_is_said_plainly() -> None:
    view = MigrationsView("app", None, None)
    assert "does not use Prisma Migrate" in migrations_message(view).text
    assert view.as_json()["prisma"] is False


def test_status_warns_about_a_failed_migration_the_newest_backup_saw() -> None:
    from tests.test_blocks import succeeded

    seen = succeeded(manifest={"prisma_migration": {"migration_name": POSTS, "failed": [BROKEN]}})
    warning = failed_warning("app", seen)
    assert warning is not None
    assert str(warning) == (
        f"Prisma migration {BROKEN} failed (as of backup {seen.id}): prisma migrate deploy "
        "applies nothing until it is resolved. See /backup migrations app."
    )
    clean = succeeded(manifest={"prisma_migration": {"migration_name": POSTS, "failed": []}})
    assert failed_warning("app", clean) is None
    assert failed_warning("app", succeeded(manifest={})) is None
    assert failed_warning("app", None) is None
