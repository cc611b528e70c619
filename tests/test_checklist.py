"""The monthly verification checklist: the pure evaluation over good and bad months, the
evidence read from the state database, and the Slack side over signed HTTP (posting once
per period, ticks, sign-off, the reminder, the overdue condition).

Time is a `ManualClock`; the steps the scheduler calls (`post_monthly`, `remind_step`,
the condition check) are called directly with `now`."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from backupbot.bot.composition import build_services
from backupbot.bot.slack.blocks import checklist as checklist_blocks
from backupbot.bot.slack.flows import Flows
from backupbot.bot.slack.flows.checklist import ChecklistFlow
from backupbot.bot.slack.kit import render
from backupbot.commands.checklist_conditions import ChecklistConditions
from backupbot.commands.checklist_rules import (
    DASH,
    ITEM_KEYS,
    TIMES,
    ChecklistEvaluation,
    ChecklistEvidence,
    ChecklistPolicy,
    DatabasePolicy,
    compact_days,
    evaluate,
    period_of,
    previous_month_start,
)
from backupbot.commands.conditions import CHECKLIST_OVERDUE
from backupbot.devkit.slack_standin import block_kit_errors
from backupbot.errors import SlackUnreachable
from backupbot.storage.checklists import BackupFact, ChecklistRecord, DrillFact, IncidentFact
from backupbot.storage.models import BackupRow, ChecklistRow, DrillRow
from tests.conftest import CHANNEL, ManualClock, clicked_while_posting, make_settings

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # the checklist's default firing: the 1st, 09:00
MB = 1 << 20
ALICE, BOB = "UALICE", "UBOB"
POLICY = ChecklistPolicy(databases=(DatabasePolicy("app", 30), DatabasePolicy("web", 14)))


# -- evidence builders ---------------------------------------------------------------------------


def _backup(db: str, day: date, size: int, **kw: Any) -> BackupFact:
    at = datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC)
    return BackupFact(
        id=kw.pop("id", f"{db[:1]}{day:%m%d}00"),
        database=db,
        started_at=at,
        stored_size=size,
        label=kw.pop("label", None),
        **kw,
    )


def _drill(db: str, at: datetime, status: str = "passed", **kw: Any) -> DrillFact:
    return DrillFact(
        id=kw.pop("id", f"d{db}{at:%m%d}"),
        database=db,
        status=status,
        started_at=at,
        finished_at=at + timedelta(minutes=3),
        total_seconds=kw.pop("total_seconds", 125.0),
        rto_minutes=30,
        channel=CHANNEL,
        message_ts=kw.pop("message_ts", "1764666000.000100"),
        **kw,
    )


def _incident(action: str, at: datetime, outcome: str = "failed", **kw: Any) -> IncidentFact:
    return IncidentFact(
        id=kw.pop("id", 1),
        at=at,
        action=action,
        outcome=outcome,
        database=kw.pop("database", "app"),
        backup_id=kw.pop("backup_id", None),
        details=kw.pop("details", {}),
    )


def good_month() -> ChecklistEvidence:
    """Daily backups of both databases (today's too), sizes growing slowly, old backups
    deleted by retention except a labelled one kept on purpose, retention ran this morning,
    a passed drill of each database in November, no verification failures."""
    backups = []
    for i in range(60):
        day = date(2026, 10, 3) + timedelta(days=i)
        for db, base in (("app", 40 * MB), ("web", 8 * MB)):
            age = (NOW.date() - day).days
            deleted = age >= (30 if db == "app" else 14)  # retention ran at 04:00 today
            gone = NOW - timedelta(hours=5) if deleted else None
            backups.append(_backup(db, day, base + i * 100_000, deleted_at=gone))
    backups.append(_backup("app", date(2026, 10, 10), 39 * MB, id="predeploy", label="pre-deploy"))
    return ChecklistEvidence(
        now=NOW,
        backups=tuple(backups),
        drills=(
            _drill("app", datetime(2026, 11, 2, 10, tzinfo=UTC)),
            _drill("web", datetime(2026, 11, 2, 10, 5, tzinfo=UTC), message_ts="1764666300.000200"),
        ),
        last_retention_run=_incident(
            "retention.run", datetime(2026, 12, 1, 4, tzinfo=UTC), "ok", database=None
        ),
        retention_due_by=datetime(2026, 11, 30, 4, tzinfo=UTC),
        drills_since=datetime(2026, 11, 1, tzinfo=UTC),
    )


def _without(ev: ChecklistEvidence, pred: Callable[[BackupFact], bool]) -> ChecklistEvidence:
    return replace(ev, backups=tuple(b for b in ev.backups if not pred(b)))


def _resized(ev: ChecklistEvidence, db: str, day: date, factor: float) -> ChecklistEvidence:
    def size(b: BackupFact) -> BackupFact:
        hit = b.database == db and b.started_at.date() == day
        return replace(b, stored_size=int((b.stored_size or 0) * factor)) if hit else b

    return replace(ev, backups=tuple(size(b) for b in ev.backups))


def _lines(evaluation: ChecklistEvaluation, key: str) -> str:
    return "\n".join(map(render, evaluation.item(key).lines))  # as Slack shows it


# -- the pure evaluation ---------------------------------------------------------------------------


def test_a_good_month_passes_all_five_items_with_the_evidence_shown() -> None:
    result = evaluate(good_month(), POLICY)

    assert [i.key for i in result.items] == list(ITEM_KEYS)
    assert result.ok, {i.key: i.lines for i in result.items if not i.ok}
    assert result.since == datetime(2026, 11, 1, tzinfo=UTC)
    assert "each of the last 30 days" in _lines(result, "backups")
    retention = _lines(result, "retention")
    assert "Last retention run: 2026-12-01 04:00 UTC" in retention
    assert "kept on purpose" in retention and "pre-deploy" in retention
    drill = _lines(result, "drill")
    assert "<https://slack.com/archives/C0BACKUPS/p1764666000000100|drill message>" in drill
    assert (
        "`app`: RTO: target 30 min · tested 2026-11-02 · Pass · 2 min 5 s · not reviewed" in drill
    )
    assert " MB → " in _lines(result, "size") and "over 31 days" in _lines(result, "size")
    assert "No checksum" in _lines(result, "corruption")
    # The evaluation survives its JSON round trip (it is stored on the checklist row).
    assert ChecklistEvaluation.from_json(json.loads(json.dumps(result.as_json()))) == result


BAD_MONTHS: list[tuple[str, Callable[[ChecklistEvidence], ChecklistEvidence], str, list[str]]] = [
    (
        "missing days are listed as compact ranges",
        lambda ev: _without(
            ev,
            lambda b: (
                b.database == "app"
                and b.started_at.date() in {date(2026, 11, d) for d in (3, 4, 5, 9, 30)}
            ),
        ),
        "backups",
        [
            "`app`: a verified backup on 25 of the last 30 days",
            f"none on Nov 3{DASH}5, Nov 9, Nov 30",
        ],
    ),
    (
        "a day-over-day size drop below half",
        lambda ev: _resized(ev, "app", date(2026, 11, 14), 0.4),
        "size",
        ["Nov 14:", f"(0.40{TIMES}, a drop below 0.5{TIMES})"],
    ),
    (
        "a day-over-day size jump above three times",
        lambda ev: _resized(ev, "web", date(2026, 11, 20), 3.5),
        "size",
        ["`web`", "Nov 20:", f"a jump above 3{TIMES}", "Nov 21:", f"a drop below 0.5{TIMES}"],
    ),
    (
        "a backup older than the retention policy is still kept",
        lambda ev: replace(
            ev, backups=(*ev.backups, _backup("web", date(2026, 11, 1), 8 * MB, id="stale01"))
        ),
        "retention",
        ["`web`: 1 backup(s) older than 14 days are still kept: `stale01` (2026-11-01)"],
    ),
    (
        "a labelled backup past keep_labeled_days is no longer kept on purpose",
        lambda ev: replace(
            ev,
            backups=(
                *ev.backups,
                _backup("app", date(2026, 8, 1), 30 * MB, id="oldlabel", label="pre-deploy"),
            ),
        ),
        "retention",
        ["`oldlabel` (2026-08-01)"],
    ),
    (
        "retention never ran",
        lambda ev: replace(ev, last_retention_run=None),
        "retention",
        ["Retention has never run"],
    ),
    (
        "retention stopped running",
        lambda ev: replace(
            ev,
            last_retention_run=_incident(
                "retention.run", datetime(2026, 11, 25, 4, tzinfo=UTC), "ok"
            ),
        ),
        "retention",
        ["last retention run was 2026-11-25 04:00 UTC", "due by 2026-11-30 04:00 UTC"],
    ),
    (
        "the last retention run failed",
        lambda ev: replace(
            ev,
            last_retention_run=_incident(
                "retention.run",
                datetime(2026, 12, 1, 4, tzinfo=UTC),
                details={"error": "1 deletion(s) failed (w111700): access denied"},
            ),
        ),
        "retention",
        ["(2026-12-01 04:00 UTC) failed: 1 deletion(s) failed (w111700): access denied"],
    ),
    (
        "no restore drill in the period",
        lambda ev: replace(ev, drills=ev.drills[1:]),
        "drill",
        ["`app`: no restore drill since 2026-11-01; run `/backup drill app`"],
    ),
    (
        "the latest drill failed",
        lambda ev: replace(
            ev,
            drills=(
                *ev.drills,
                _drill(
                    "app", datetime(2026, 11, 20, tzinfo=UTC), "failed", error="pg_restore failed"
                ),
            ),
        ),
        "drill",
        [
            "`app`: RTO: target 30 min · tested 2026-11-20 · Fail",
            "(the drill of 2026-11-20 00:00 UTC failed: pg_restore failed; an earlier drill "
            "passed 2026-11-02 10:00 UTC)",
        ],
    ),
    (
        "a backup failed its checksum verification",
        lambda ev: replace(
            ev,
            incidents=(
                _incident(
                    "backup.failed",
                    datetime(2026, 11, 12, 2, 5, tzinfo=UTC),
                    backup_id="a1b2c3d4",
                    details={"error": "SHA-256 <mismatch>", "error_type": "VerificationFailed"},
                ),
            ),
        ),
        "corruption",
        ["2026-11-12 02:05 UTC `app` backup `a1b2c3d4`: SHA-256 &lt;mismatch&gt;"],
    ),
    (
        "a restore's row counts did not match, and a drill failed verifying",
        lambda ev: replace(
            ev,
            incidents=(
                _incident(
                    "restore.verified",
                    datetime(2026, 11, 15, tzinfo=UTC),
                    details={"restore_id": "r1", "mismatches": [{"table": "User"}]},
                ),
                _incident(
                    "restore.failed",  # the same restore: counted once
                    datetime(2026, 11, 15, tzinfo=UTC),
                    id=2,
                    details={"restore_id": "r1", "error_type": "_VerificationMismatch"},
                ),
            ),
            drills=(
                *ev.drills,
                DrillFact(
                    id="dverify",
                    database="web",
                    status="failed",
                    started_at=datetime(2026, 11, 1, tzinfo=UTC),
                    error="row counts differ",
                    failed_stage="verify",
                ),
            ),
        ),
        "corruption",
        [
            "restore `r1`: row counts differ from the backup in 1 table(s)",
            "drill `dverify`",
            "2 verification failure(s)",  # the restore's two records count once
        ],
    ),
    (
        "a restore lost an index: the rows matched, the schema did not",
        lambda ev: replace(
            ev,
            incidents=(
                _incident(
                    "restore.verified",
                    datetime(2026, 11, 16, tzinfo=UTC),
                    details={
                        "restore_id": "r2",
                        "mismatches": [],
                        "schema": "failed",
                        "schema_differences": [
                            {"text": "index public.orders_customer_idx missing"},
                            {"text": "trigger t on public.orders missing"},
                        ],
                    },
                ),
            ),
        ),
        "corruption",
        [
            "restore `r2`: the schema differs in 2 place(s) "
            "(index public.orders_customer_idx missing)",
            "1 verification failure(s)",
        ],
    ),
]


@pytest.mark.parametrize(
    ("case", "change", "flagged", "evidence"), BAD_MONTHS, ids=[c[0] for c in BAD_MONTHS]
)
def test_a_bad_month_flags_exactly_the_item_at_fault_with_the_facts(
    case: str,
    change: Callable[[ChecklistEvidence], ChecklistEvidence],
    flagged: str,
    evidence: list[str],
) -> None:
    result = evaluate(change(good_month()), POLICY)

    assert result.needs_look == [flagged], {k: result.item(k).lines for k in result.needs_look}
    text = _lines(result, flagged) + "\n" + result.item(flagged).summary
    for fact in evidence:
        assert fact in text
    assert result.item(flagged).mark == "⚠️" and not result.ok


def test_the_test_restore_evidence_names_who_reviewed_the_drill() -> None:
    ev = good_month()
    reviewed = tuple(replace(d, reviewed_by="U0BOB") for d in ev.drills)
    result = evaluate(replace(ev, drills=reviewed), POLICY)
    assert result.ok and "reviewed by <@U0BOB>" in _lines(result, "drill")
    assert "reviewed by" not in _lines(evaluate(ev, POLICY), "drill")


def test_the_test_restore_evidence_is_the_rto_record_with_the_trend_of_the_last_six() -> None:
    ev = good_month()
    older = tuple(
        _drill("app", datetime(2026, 10 - i, 5, 10, tzinfo=UTC), id=f"dold{i}", total_seconds=60.0)
        for i in range(7)
    )
    policy = replace(POLICY, databases=(DatabasePolicy("app", 30, 20), POLICY.databases[1]))
    result = evaluate(replace(ev, recent_drills=(*older, ev.drills[0])), policy)
    [app, web] = result.item("drill").lines
    assert str(app).startswith(
        "✅ app: RTO: target 20 min · tested 2026-11-02 · Pass · 2 min 5 s (against 30 min then)"
    )
    # the newest drill and the five before it, oldest first, whatever their age
    assert str(app).endswith("; trend " + " → ".join(["1 min 0 s ✓"] * 5 + ["2 min 5 s ✓"]))
    assert "trend" not in str(web)  # one drill: nothing to compare
    assert result.item("drill").details["drills"]["app"]["rto"]["target_minutes"] == 20
    never = evaluate(replace(ev, drills=ev.drills[1:]), POLICY).item("drill").lines[0]
    assert str(never).endswith(
        "no restore drill since 2026-11-01; run /backup drill app · RTO: target ? · never tested"
    )


def test_the_newest_backup_is_kept_past_the_policy_but_the_missing_days_are_flagged() -> None:
    ev = _without(good_month(), lambda b: b.database == "web")
    ev = replace(ev, backups=(*ev.backups, _backup("web", date(2026, 10, 10), 8 * MB, id="wlast")))

    result = evaluate(ev, POLICY)

    retention = _lines(result, "retention")
    assert "`web`: nothing older than 14 days (kept on purpose: the newest" in retention
    assert result.needs_look == ["backups"]
    assert f"`web`: a verified backup on 0 of the last 30 days; none on Nov 1{DASH}30" in _lines(
        result, "backups"
    )


def test_a_slow_drill_over_the_rto_needs_a_look() -> None:
    ev = replace(
        good_month(),
        drills=(
            _drill("app", datetime(2026, 11, 2, tzinfo=UTC), total_seconds=45 * 60),
            good_month().drills[1],
        ),
    )
    result = evaluate(ev, POLICY)
    assert result.needs_look == ["drill"]
    assert "over the RTO of 30 min" in _lines(result, "drill")


def test_compact_day_ranges_periods_and_the_drill_window() -> None:
    days = [date(2026, 11, d) for d in (3, 4, 5, 9, 30)] + [date(2026, 12, 1)]
    assert compact_days(days) == f"Nov 3{DASH}5, Nov 9, Nov 30{DASH}Dec 1"
    assert compact_days([]) == ""
    # The period is the month where the scheduler runs: 09:00 on the 1st in Auckland is
    # still the last day of the previous month in UTC.
    auckland = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
    assert period_of(auckland, "Pacific/Auckland") == "2026-12"
    assert period_of(auckland) == "2026-11"
    assert previous_month_start(NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    assert previous_month_start(datetime(2027, 1, 1, 9, tzinfo=UTC)) == datetime(
        2026, 12, 1, tzinfo=UTC
    )


def test_the_checklist_message_is_valid_block_kit_even_with_many_databases() -> None:
    many = ChecklistPolicy(databases=tuple(DatabasePolicy(f"db{i:02}", 30) for i in range(60)))
    ev = ChecklistEvidence(
        now=NOW,
        backups=tuple(
            _backup(f"db{i:02}", date(2026, 11, d), MB * (1 + d % 5), id=f"b{i}{d}")
            for i in range(60)
            for d in range(1, 31, 2)
        ),
    )
    evaluation = evaluate(ev, many)
    record = _record(evaluation.as_json())
    message = checklist_blocks.checklist_message(record)
    assert block_kit_errors(message.blocks) == []
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    checkboxes, button = actions["elements"]
    assert len(checkboxes["options"]) == 5 and "initial_options" not in checkboxes
    for option in checkboxes["options"]:
        assert len(option["text"]["text"]) <= 75 and len(option["description"]["text"]) <= 75
    assert button["action_id"] == checklist_blocks.SIGN_OFF_ACTION and button["value"] == "c1"


def _record(evaluation: dict[str, Any], **kw: Any) -> ChecklistRecord:
    values: dict[str, Any] = {
        "id": "c1",
        "period": "2026-12",
        "posted_at": NOW,
        "evaluation": evaluation,
        "ticked": (),
        "version": 0,
        "signed_off_by": None,
        "signed_off_at": None,
        "reminded_at": None,
        "channel": CHANNEL,
        "message_ts": "1.000001",
    }
    values.update(kw)
    return ChecklistRecord(**values)


# -- evidence from the state database --------------------------------------------------------------


def _settings(state_url: str, tmp_path: Path, **extra: Any) -> Any:
    return make_settings(
        state_url=state_url,
        storage={"local": {"path": str(tmp_path / "backups")}},
        databases=[
            {"name": "app", "url": "postgresql://bot:secret@127.0.0.1:9/app"},
            {"name": "web", "url": "postgresql://bot:secret@127.0.0.1:9/web", "retention_days": 14},
        ],
        extra=extra or None,
    )


def _store_backup(session: Session, fact: BackupFact, status: str = "succeeded") -> None:
    session.add(
        BackupRow(
            id=fact.id,
            database=fact.database,
            status=status,
            actor="scheduler",
            label=fact.label,
            started_at=fact.started_at,
            heartbeat_at=fact.started_at,
            finished_at=fact.started_at + timedelta(minutes=1),
            progress_bytes=0,
            store="local",
            stored_size=fact.stored_size,
            deleted_at=fact.deleted_at,
        )
    )


def _store_drill(session: Session, fact: DrillFact, result: dict[str, Any]) -> None:
    session.add(
        DrillRow(
            id=fact.id,
            database=fact.database,
            status=fact.status,
            actor="scheduler",
            scratch_db=f"drill_{fact.id}",
            scratch_dropped=True,
            started_at=fact.started_at,
            heartbeat_at=fact.started_at,
            finished_at=fact.finished_at,
            total_seconds=fact.total_seconds,
            rto_minutes=30,
            result=result,
            error=fact.error,
            channel=fact.channel,
            message_ts=fact.message_ts,
        )
    )


def seed_good_month(services: Any) -> None:
    ev = good_month()
    with Session(services.engine) as session, session.begin():
        for b in ev.backups:
            _store_backup(session, b)
        for d in ev.drills:
            _store_drill(session, d, {})
    assert ev.last_retention_run is not None
    services.incidents.record(
        at=ev.last_retention_run.at, actor="scheduler", action="retention.run", outcome="ok"
    )


def test_the_gatherer_reads_backups_drills_and_incidents_from_the_state_database(
    state_url: str, tmp_path: Path
) -> None:
    services = build_services(_settings(state_url, tmp_path), {}, clock=ManualClock(NOW))
    try:
        seed_good_month(services)
        # A manual run for one database is not the last retention run of all of them.
        services.incidents.record(
            at=NOW - timedelta(hours=1),
            actor=ALICE,
            action="retention.run",
            outcome="failed",
            database="app",
            details={"error": "1 deletion(s) failed"},
        )
        assert services.checklists.evaluate(NOW) == evaluate(good_month(), POLICY)
        # The RTO record's trend reaches past the window: app's August drill is in it.
        august = datetime(2026, 8, 3, 10, tzinfo=UTC)
        with Session(services.engine) as session, session.begin():
            _store_drill(session, _drill("app", august, id="daug", total_seconds=90.0), {})
        [app_line, _web] = services.checklists.evaluate(NOW).item("drill").lines
        assert str(app_line).startswith("✅ app: RTO: target 30 min · tested 2026-11-02 · Pass")
        assert str(app_line).endswith("; trend 1 min 30 s ✓ → 2 min 5 s ✓")

        # A failed backup is not a verified one; a failed drill in verification and a
        # verification failure of a backup are corruption warnings.
        gap = datetime(2026, 11, 16, 2, tzinfo=UTC)
        with Session(services.engine) as session, session.begin():
            session.execute(
                BackupRow.__table__.update()
                .where(BackupRow.database == "app", BackupRow.started_at == gap)
                .values(status="failed")
            )
            _store_drill(
                session,
                _drill("web", datetime(2026, 11, 23, 10, tzinfo=UTC), "failed", id="dbad"),
                {"failed_stage": "verify"},
            )
        services.incidents.record(
            at=gap,
            actor="scheduler",
            action="backup.failed",
            outcome="failed",
            database="app",
            backup_id="a1116",
            details={
                "error": "The stored copy does not match: SHA-256 differs.",
                "error_type": "VerificationFailed",
            },
        )
        result = services.checklists.evaluate(NOW)
        assert result.needs_look == ["backups", "drill", "corruption"]
        assert "none on Nov 16" in _lines(result, "backups")
        corruption = _lines(result, "corruption")
        assert "backup `a1116`: The stored copy does not match" in corruption
        assert "drill `dbad`" in corruption
    finally:
        services.close()


# -- Slack: posting, ticking, signing off ---------------------------------------------------------


def _bot(bot_factory: Any, state_url: str, tmp_path: Path, clock: ManualClock) -> Any:
    bot = bot_factory(_settings(state_url, tmp_path), clock)
    seed_good_month(bot.services)
    return bot


def _flow(bot: Any) -> ChecklistFlow:
    return Flows(bot.services, bot.services.slack_client).checklist


def _checklist_messages(bot: Any) -> list[Any]:
    return [
        m
        for m in bot.standin.messages(CHANNEL)
        if m.text.startswith("Backup verification checklist")
    ]


def _tick(bot: Any, user: str, record: Any, selected: list[str]) -> None:
    """Tick exactly `selected` on the checklist message, as `user` sees it now."""
    msg = bot.standin.message(record.channel, record.message_ts)
    [actions] = [b for b in msg.blocks if b["type"] == "actions"]
    resp = bot.signer.checkboxes_action(
        user,
        checklist_blocks.CHECK_ACTION,
        selected,
        record.channel,
        record.message_ts,
        actions["block_id"],
    )
    assert resp.status == 200
    bot.wait_idle()


def _sign_off(
    bot: Any, user: str, record: Any, reason: str = "looked at the warnings"
) -> dict[str, Any] | None:
    """Press Sign off as `user`, and give `reason` in the modal if one opens (the
    checklist shows a warning); the ephemeral answer, if any."""
    modals = len(bot.standin.opened_modals())
    url = bot.standin.new_response_url()
    resp = bot.signer.block_action(
        user,
        checklist_blocks.SIGN_OFF_ACTION,
        record.id,
        record.channel,
        record.message_ts,
        response_url=url,
    )
    assert resp.status == 200
    bot.wait_idle()
    opened = bot.standin.opened_modals()
    if len(opened) > modals:
        answer = bot.signer.submit_view(user, opened[-1], {"reason": {"reason_text": reason}})
        assert answer.status == 200
        bot.wait_idle()
    posts = bot.standin.response_posts(url)
    return posts[-1].body if posts else None


def _actions(bot: Any, record: Any) -> list[dict[str, Any]]:
    msg = bot.standin.message(record.channel, record.message_ts)
    return [b for b in msg.blocks if b["type"] == "actions"]


def _incidents(services: Any, action: str) -> list[Any]:
    return [i for i in reversed(services.incidents.recent(500)) if i.action == action]


def test_the_monthly_checklist_is_posted_with_five_checkboxes_and_the_evidence(
    state_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(NOW)
    bot = _bot(bot_factory, state_url, tmp_path, clock)

    record = _flow(bot).post_monthly(NOW)

    assert record is not None and record.period == "2026-12" and record.message_ts
    [msg] = _checklist_messages(bot)
    assert msg.ts == record.message_ts and block_kit_errors(msg.blocks) == []
    body = json.dumps(msg.blocks, ensure_ascii=False)
    assert "Backup verification checklist · 2026-12" in body
    for title in ("1. Automated backups running", "5. No corruption warnings"):
        assert title in body
    assert "each of the last 30 days" in body and "drill message" in body and "secret" not in body
    [actions] = _actions(bot, record)
    checkboxes, button = actions["elements"]
    assert checkboxes["type"] == "checkboxes"
    assert [o["value"] for o in checkboxes["options"]] == list(ITEM_KEYS)
    assert all(o["description"]["text"].startswith("✅") for o in checkboxes["options"])
    assert button["text"]["text"] == "Sign off" and "confirm" in button
    [posted] = _incidents(bot.services, "checklist.posted")
    assert posted.details["period"] == "2026-12" and posted.details["ts"] == record.message_ts
    assert all(v["ok"] for v in posted.details["items"].values())
    # `/backup status` reads the month's checklist from here.
    summary = bot.services.checklists.summary(NOW)
    assert summary is not None and (summary.period, summary.ticked, summary.items) == (
        "2026-12",
        0,
        5,
    )


def test_posting_twice_for_one_period_gives_one_message(
    state_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(NOW)
    bot = _bot(bot_factory, state_url, tmp_path, clock)
    # A second bot process on the same state database, racing the first.
    other = build_services(
        bot.services.settings,
        {"SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_API_URL": bot.standin.base_url},
        clock=clock,
    )
    try:
        flows = [_flow(bot), Flows(other, other.slack_client).checklist]
        results: list[Any] = []
        barrier = threading.Barrier(2)

        def post(flow: ChecklistFlow) -> None:
            barrier.wait()
            results.append(flow.post_monthly(NOW))

        threads = [threading.Thread(target=post, args=(f,)) for f in flows]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len([r for r in results if r is not None]) == 1
        # A retry (the scheduler run again, a later minute) posts nothing either.
        assert flows[0].post_monthly(NOW + timedelta(hours=1)) is None
        assert flows[1].remind_step(NOW + timedelta(hours=1)) is False
    finally:
        other.close()
    assert len(_checklist_messages(bot)) == 1
    assert len(_incidents(bot.services, "checklist.posted")) == 1
    with Session(bot.services.engine) as session:
        assert session.query(ChecklistRow).count() == 1


def test_a_post_slack_refused_is_given_back_and_posted_by_the_next_step(
    tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(NOW)
    bot = _bot(bot_factory, f"sqlite:///{tmp_path / 'state.db'}", tmp_path, clock)
    offline = Flows(
        bot.services, WebClient(token="x", base_url="http://127.0.0.1:9/api/")
    ).checklist

    with pytest.raises(SlackUnreachable, match="could not be posted"):
        offline.post_monthly(NOW)
    assert _checklist_messages(bot) == []
    assert _flow(bot).remind_step(NOW + timedelta(minutes=1)) is True
    assert len(_checklist_messages(bot)) == 1
    assert _flow(bot).remind_step(NOW + timedelta(minutes=2)) is False


def test_ticks_are_kept_per_person_and_sign_off_waits_for_all_five(
    state_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(NOW)
    bot = _bot(bot_factory, state_url, tmp_path, clock)
    record = _flow(bot).post_monthly(NOW)
    assert record is not None

    _tick(bot, ALICE, record, ["backups"])
    _tick(bot, BOB, record, ["backups", "retention"])  # Bob sees Alice's tick and adds his
    _tick(bot, ALICE, record, ["retention"])  # Alice takes hers back
    current = bot.services.checklists.get(record.id)
    assert current.ticked == ("retention",) and current.version == 3
    [actions] = _actions(bot, record)
    assert [o["value"] for o in actions["elements"][0]["initial_options"]] == ["retention"]
    ticks = _incidents(bot.services, "checklist.ticked")
    assert [(i.actor, i.details["checked"], i.details["unchecked"]) for i in ticks] == [
        (ALICE, ["backups"], []),
        (BOB, ["retention"], []),
        (ALICE, [], ["backups"]),
    ]

    # Someone clicking on a stale view changes only what they changed.
    stale = bot.services.checklists.tick(record.id, BOB, ["drill"], [], now=NOW)
    assert stale.changed and stale.record.ticked == ("retention", "drill")

    answer = _sign_off(bot, ALICE, record)
    assert answer is not None and answer["response_type"] == "ephemeral"
    assert "still unticked" in answer["text"] and "1. Automated backups running" in answer["text"]
    assert "2. Retention" not in answer["text"]
    assert bot.services.checklists.get(record.id).signed_off_by is None
    assert len(_actions(bot, record)) == 1
    [refused] = _incidents(bot.services, "checklist.sign_off_refused")
    assert refused.details["unticked"] == ["backups", "size", "corruption"]

    _tick(bot, ALICE, record, list(ITEM_KEYS))
    own = _sign_off(bot, ALICE, record)  # four eyes: whoever ticked the last item does not sign
    assert own is not None and "someone else signs off" in own["text"]
    assert _incidents(bot.services, "checklist.sign_off_refused")[-1].details["reason"] == (
        "four_eyes"
    )
    signed_at = clock.advance(hours=26)
    assert _sign_off(bot, BOB, record) is None

    final = bot.services.checklists.get(record.id)
    assert final.signed_off_by == BOB and final.signed_off_at == signed_at
    evaluation = ChecklistEvaluation.from_json(final.evaluation)
    assert evaluation is not None and evaluation.at == signed_at  # evaluated again
    assert _actions(bot, record) == []
    msg = bot.standin.message(record.channel, record.message_ts)
    assert block_kit_errors(msg.blocks) == []
    assert f"Signed off by <@{BOB}> on 2026-12-02 11:00 UTC" in json.dumps(msg.blocks)
    [signed] = _incidents(bot.services, "checklist.signed_off")
    assert signed.actor == BOB and signed.details["period"] == "2026-12"
    assert set(signed.details["items"]) == set(ITEM_KEYS)
    summary = bot.services.checklists.summary(signed_at)
    assert summary is not None and summary.signed_off_by == BOB

    # After the sign-off nothing moves: a second sign-off and a late tick are refused.
    again = _sign_off(bot, ALICE, record)
    assert again is not None and "already signed off by <@UBOB>" in json.dumps(again)
    late = bot.services.checklists.tick(record.id, ALICE, [], None, now=signed_at)
    assert late.refusal is not None and not late.changed
    assert bot.services.checklists.get(record.id).signed_off_by == BOB


def test_an_unsigned_checklist_is_reminded_once_then_overdue_until_signed_off(
    state_url: str, tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(NOW)
    bot = _bot(bot_factory, state_url, tmp_path, clock)
    flow = _flow(bot)
    record = flow.post_monthly(NOW)
    assert record is not None
    conditions = ChecklistConditions(bot.services.checklists)
    assert conditions.conditions == (CHECKLIST_OVERDUE,)

    assert flow.remind_step(clock.advance(days=2, hours=23)) is False
    assert conditions.check(clock.now()) == []
    assert flow.remind_step(clock.advance(hours=1)) is True  # 3 days after posting
    assert flow.remind_step(clock.advance(minutes=1)) is False
    assert flow.remind_step(clock.advance(hours=12)) is False
    [reminder] = [m for m in bot.standin.messages(CHANNEL) if "not signed off yet" in m.text]
    link = f"https://slack.com/archives/{CHANNEL}/p{record.message_ts.replace('.', '')}"
    assert (
        link in json.dumps(reminder.blocks)
        and "0 of 5 items ticked" in reminder.blocks[0]["text"]["text"]
    )
    assert len(_incidents(bot.services, "checklist.reminded")) == 1
    assert conditions.check(clock.now()) == []  # the reminder gets a day to work

    [finding] = conditions.check(clock.advance(hours=12))  # 4 days after posting
    assert finding.condition == CHECKLIST_OVERDUE and finding.database is None
    assert "2026-12" in str(finding.summary) and "Sign off" in str(finding.summary)
    assert finding.details["link"] == link

    _tick(bot, ALICE, record, list(ITEM_KEYS))
    assert _sign_off(bot, BOB, record) is None
    assert conditions.check(clock.advance(days=1)) == []
    assert flow.remind_step(clock.now()) is False


def test_a_signed_checklist_is_never_reminded_and_next_month_starts_fresh(
    tmp_path: Path, bot_factory: Any
) -> None:
    clock = ManualClock(NOW)
    bot = _bot(bot_factory, f"sqlite:///{tmp_path / 'state.db'}", tmp_path, clock)
    flow = _flow(bot)
    record = flow.post_monthly(NOW)
    assert record is not None
    _tick(bot, ALICE, record, list(ITEM_KEYS))
    assert _sign_off(bot, BOB, record) is None
    assert flow.remind_step(clock.advance(days=5)) is False

    january = datetime(2027, 1, 1, 9, tzinfo=UTC)
    nxt = flow.post_monthly(january)
    assert nxt is not None and nxt.period == "2027-01" and nxt.id != record.id
    assert nxt.ticked == () and not nxt.signed_off
    assert bot.services.checklists.current(january) == nxt
    assert len(_checklist_messages(bot)) == 2


def test_ticks_landing_while_the_checklist_is_posted_still_show_on_the_message(
    tmp_path: Path, bot_factory: Any
) -> None:
    """Found by the acceptance suite's race: a click between the post and its record."""
    clock = ManualClock(NOW)
    bot = _bot(bot_factory, f"sqlite:///{tmp_path}/s.db", tmp_path, clock)
    ticked = list(ITEM_KEYS[:2])

    def tick(message: dict[str, Any]) -> None:
        [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
        checklist_id = checklist_blocks.checklist_id_of(actions["block_id"])
        assert checklist_id is not None
        bot.services.checklists.tick(checklist_id, "UBOB", ticked, None, now=NOW)

    fast = clicked_while_posting(bot, tick)
    record = Flows(bot.services, fast).checklist.post_monthly(NOW)

    assert record is not None and list(record.ticked) == ticked
    [actions] = _actions(bot, record)
    shown = [o["value"] for o in actions["elements"][0].get("initial_options", [])]
    assert shown == ticked
