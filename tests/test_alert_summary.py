"""An alert's summary is kept as a phrase, so each front end words its advice its own way."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

from backupbot.bot.cli.render.phrase import render as plain_render
from backupbot.bot.slack.kit import render as slack_render
from backupbot.phrases import Command, Name, say
from backupbot.storage.alerts import AlertStore
from backupbot.storage.models import AlertRow
from backupbot.storage.state import create_state_engine, migrate
from backupbot.storage.unit_of_work import orm_session

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_a_stored_summary_renders_for_slack_and_the_terminal(tmp_path: Path) -> None:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    store = AlertStore(engine)
    summary = say(
        "The latest backup of {db} failed. Run {cmd}.",
        db=Name("<!channel>"),
        cmd=Command("now", "app"),
    )
    opened = store.open("backup_failed", "app", summary, {}, NOW)
    assert opened is not None
    [again] = store.open_alerts()
    assert again.summary == "The latest backup of <!channel> failed. Run /backup now app."
    assert slack_render(again.summary_phrase) == (
        "The latest backup of `&lt;!channel&gt;` failed. Run `/backup now app`."
    )
    assert plain_render(again.summary_phrase) == (
        "The latest backup of <!channel> failed. Run backupbot backup now app."
    )


def test_a_summary_stored_before_phrases_shows_as_text(tmp_path: Path) -> None:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    store = AlertStore(engine)
    opened = store.open("stale", "app", "placeholder", {}, NOW)
    assert opened is not None
    with orm_session(engine) as session:
        session.execute(update(AlertRow).values(summary="[[old] <@U0X> text"))
        session.commit()
    [old] = store.open_alerts()
    assert old.summary == "[[old] <@U0X> text"
    assert slack_render(old.summary_phrase) == "[[old] &lt;@U0X&gt; text"
