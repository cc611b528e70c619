"""Notes of operations done outside the bot (`/backup note`): the grammar on both
surfaces, the note and its confirmation against a real state database, the log lines, and
the checklist rule (a staging restore counts only once a second person confirmed it)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from backupbot.bot.cli.render.log import incident_line as cli_line
from backupbot.bot.slack.blocks.status import incident_line as slack_line
from backupbot.commands import registry as r
from backupbot.commands.checklist_rules import ChecklistEvidence, evaluate
from backupbot.commands.click_origin import ClickOrigin
from backupbot.commands.operation_notes import MAX_TEXT, NoteService
from backupbot.commands.parse import parse_command
from backupbot.errors import UnknownDatabase, UsageError
from backupbot.storage.checklists import ChecklistEvidenceQueries
from backupbot.storage.incidents import IncidentLog
from backupbot.storage.operation_notes import OperationNote, OperationNotes
from backupbot.storage.state import create_state_engine, migrate
from tests.conftest import CHANNEL, ManualClock
from tests.test_checklist import NOW, POLICY, _drill, _lines, good_month
from tests.test_registry import _cli_request

DATABASES = ["app", "web"]
ALICE, BOB = "UALICE", "UBOB"

# -- the grammar ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "body"),
    [
        ("note app Restored via the Neon dashboard", "other", "Restored via the Neon dashboard"),
        ("note app restore Restored it, didn't we?", "restore", "Restored it, didn't we?"),
        (
            'note web STAGING-RESTORE pg_restore of "1a2b" ok',
            "staging-restore",
            'pg_restore of "1a2b" ok',
        ),
        ("note app other  two  spaces\nand a line", "other", "two  spaces\nand a line"),
        ("note app restoring is a word", "other", "restoring is a word"),
    ],
)
def test_a_note_takes_an_optional_kind_and_the_rest_of_the_line_as_typed(
    text: str, kind: str, body: str
) -> None:
    request = parse_command(text, DATABASES)
    assert request == r.Note(database=text.split()[1], kind=kind, text=body)


@pytest.mark.parametrize(
    ("text", "error", "problem"),
    [
        ("note", UsageError, "Which database? Configured: app, web."),
        ("note app", UsageError, "Say what was done, where and by whom"),
        ("note app staging-restore   ", UsageError, "Say what was done, where and by whom"),
        ("note prod restored it", UnknownDatabase, "no configured database named prod"),
        ("note app " + "x" * (MAX_TEXT + 1), UsageError, f"keep it to {MAX_TEXT}"),
    ],
)
def test_a_note_without_a_database_or_text_or_too_long_is_a_usage_answer(
    text: str, error: type[Exception], problem: str
) -> None:
    with pytest.raises(error) as raised:
        parse_command(text, DATABASES)
    assert problem in str(raised.value)
    assert isinstance(raised.value, UsageError) and raised.value.command == "note"


def test_the_cli_takes_the_same_note_with_kind_and_author_as_options() -> None:
    slack = parse_command("note app staging-restore Restored into staging", DATABASES)
    cli = _cli_request(["note", "app", "Restored into", "staging", "--kind", "staging-restore"])
    assert cli == slack
    quoted = _cli_request(["note", "app", "Restored into staging", "--as", "U0ALICE"])
    assert quoted == r.Note("app", "other", "Restored into staging", as_user="U0ALICE")
    with pytest.raises(UsageError, match="is not a kind of note"):
        _cli_request(["note", "app", "text", "--kind", "prod"])
    with pytest.raises(UsageError, match="Say what was done"):
        _cli_request(["note", "app"])


# -- recording and confirming ----------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def _service(engine: Engine, clock: ManualClock) -> NoteService:
    return NoteService(OperationNotes(engine), IncidentLog(engine), clock)


def test_a_note_is_stored_and_recorded_with_its_author_and_text(engine: Engine) -> None:
    notes = _service(engine, ManualClock(NOW))
    note = notes.record("app", "restore", "  Restored <!channel> from the dashboard ", ALICE)
    assert notes.get(note.id) == note
    assert (note.author, note.text, note.created_at) == (
        ALICE,
        "Restored <!channel> from the dashboard",
        NOW,
    )
    [record] = IncidentLog(engine).recent(5)
    assert (record.action, record.actor, record.database, record.outcome) == (
        "note.recorded",
        ALICE,
        "app",
        "ok",
    )
    assert record.details == {
        "note_id": note.id,
        "kind": "restore",
        "text": "Restored <!channel> from the dashboard",
    }
    assert "restore: Restored <!channel> from the dashboard" in cli_line(record)
    assert "restore: Restored &lt;!channel&gt; from the dashboard" in slack_line(record)
    with pytest.raises(UsageError):
        notes.record("app", "restore", "", ALICE)
    assert len(IncidentLog(engine).recent(5)) == 1  # nothing stored, nothing recorded


def test_a_staging_restore_is_confirmed_once_by_someone_other_than_its_author(
    engine: Engine,
) -> None:
    clock = ManualClock(NOW)
    notes = _service(engine, clock)
    note = notes.record("app", "staging-restore", "pg_restore into staging, counts match", ALICE)
    notes.posted(note.id, CHANNEL, "1764666000.000100")
    here = ClickOrigin(CHANNEL, "1764666000.000100")

    own = notes.confirm(note.id, ALICE, here)
    assert own.refusal is not None and "You wrote this note" in str(own.refusal)
    elsewhere = notes.confirm(note.id, BOB, ClickOrigin(CHANNEL, "1764666999.000900"))
    assert elsewhere.refusal is not None and elsewhere.note.confirmed_by is None

    clock.advance(minutes=5)
    done = notes.confirm(note.id, BOB, here)
    assert done.refusal is None
    assert (done.note.confirmed_by, done.note.confirmed_at) == (BOB, NOW + timedelta(minutes=5))
    again = notes.confirm(note.id, "UCAROL", here)
    assert again.refusal is not None and "already confirmed" in str(again.refusal)
    assert notes.get(note.id).confirmed_by == BOB

    log = IncidentLog(engine).recent(10)
    codes = [i.details.get("code") for i in log if i.action == "note.confirm_refused"]
    assert codes == ["note.already_confirmed", "click.mismatch", "note.own"]  # newest first
    [confirmed] = [i for i in log if i.action == "note.confirmed"]
    assert confirmed.actor == BOB and confirmed.details["author"] == ALICE
    assert f"staging-restore note {note.id} by {ALICE}" in cli_line(confirmed)


def test_only_a_staging_restore_note_is_confirmed(engine: Engine) -> None:
    notes = _service(engine, ManualClock(NOW))
    note = notes.record("app", "restore", "Restored from the provider dashboard", ALICE)
    refused = notes.confirm(note.id, BOB)
    assert refused.refusal is not None and refused.note.confirmed_by is None
    assert IncidentLog(engine).recent(1)[0].details["code"] == "note.kind"


def test_the_checklist_reads_staging_restores_of_the_period_only(engine: Engine) -> None:
    clock = ManualClock(NOW - timedelta(days=40))
    notes = _service(engine, clock)
    notes.record("app", "staging-restore", "too old", ALICE)
    clock.advance(days=39)
    notes.record("app", "restore", "a production restore is no restore test", ALICE)
    recent = notes.record("app", "staging-restore", "this month", ALICE)
    found = ChecklistEvidenceQueries(engine).staging_restores(NOW - timedelta(days=30))
    assert [n.id for n in found] == [recent.id]


# -- the checklist rule ----------------------------------------------------------------------


def _note(db: str, at: datetime, confirmed_by: str | None = BOB) -> OperationNote:
    return OperationNote(
        id=f"n{db}{at:%d}",
        database=db,
        kind="staging-restore",
        text="restored into staging",
        author=ALICE,
        created_at=at,
        confirmed_by=confirmed_by,
        confirmed_at=at + timedelta(hours=1) if confirmed_by else None,
        channel=CHANNEL,
        message_ts="1764666000.000500",
    )


def _without_app_drill(ev: ChecklistEvidence) -> ChecklistEvidence:
    return replace(ev, drills=tuple(d for d in ev.drills if d.database != "app"))


def test_a_confirmed_staging_restore_counts_as_the_test_restore_of_its_database() -> None:
    ev = replace(
        _without_app_drill(good_month()),
        staging_restores=(_note("app", datetime(2026, 11, 20, 15, tzinfo=UTC)),),
    )
    result = evaluate(ev, POLICY)
    item = result.item("drill")
    assert item.ok, item.lines
    lines = _lines(result, "drill")
    assert f"staging restore noted by <@{ALICE}>, confirmed by <@{BOB}>" in lines
    assert "|note>" in lines  # a link to the note's message
    assert "1 by a confirmed staging restore" in item.summary
    assert item.details["drills"]["app"]["note_id"] == "napp20"


def test_an_unconfirmed_staging_restore_is_a_warning_and_does_not_count() -> None:
    ev = replace(
        _without_app_drill(good_month()),
        staging_restores=(_note("app", datetime(2026, 11, 20, tzinfo=UTC), confirmed_by=None),),
    )
    item = evaluate(ev, POLICY).item("drill")
    assert not item.ok
    assert item.summary == "Staging restore not confirmed: app"
    [app_line] = [x for x in _lines(evaluate(ev, POLICY), "drill").splitlines() if "`app`" in x]
    assert f"noted by <@{ALICE}>" in app_line
    assert "not yet confirmed by a second person" in app_line

    # beside a passed drill it does not take the pass away, and still shows
    passed = replace(good_month(), staging_restores=ev.staging_restores)
    result = evaluate(passed, POLICY)
    assert result.item("drill").ok
    assert "not yet confirmed by a second person" in _lines(result, "drill")


def test_the_newer_of_a_drill_and_a_confirmed_staging_restore_decides() -> None:
    failed = _drill("app", datetime(2026, 11, 25, tzinfo=UTC), "failed", error="pg_restore failed")
    older_note = _note("app", datetime(2026, 11, 20, tzinfo=UTC))
    ev = replace(_without_app_drill(good_month()), drills=(*good_month().drills[1:], failed))
    assert not evaluate(replace(ev, staging_restores=(older_note,)), POLICY).item("drill").ok
    newer_note = _note("app", datetime(2026, 11, 27, tzinfo=UTC))
    assert evaluate(replace(ev, staging_restores=(newer_note,)), POLICY).item("drill").ok


def test_a_staging_restore_before_the_drill_window_does_not_count() -> None:
    ev = replace(
        _without_app_drill(good_month()),
        staging_restores=(_note("app", datetime(2026, 10, 20, tzinfo=UTC)),),
    )
    item = evaluate(ev, POLICY).item("drill")
    assert not item.ok and item.summary == "No drill: app"
