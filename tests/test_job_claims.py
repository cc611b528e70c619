"""Restore and drill rows as queue jobs: a waiting row is claimed once, and who may take a
running one over (`storage/liveness.py`): nobody while a queue holds it and its holder
lives, at once when its owner on this host is gone, after 45 s when its process is silent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from backupbot.storage.drills import DrillLog, new_drill_id
from backupbot.storage.liveness import SHARED_QUEUE, owner_is_dead, process_identity
from backupbot.storage.restores import DRILL, NewRestore, RestoreRecord, RestoreRequests
from backupbot.storage.state import create_state_engine, migrate

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
DEAD = "somewhere:1:gone"  # what the tests' `is_dead` says has stopped


def _dead(owner: str | None) -> bool:
    return owner == DEAD


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_state_engine(f"sqlite:///{tmp_path / 'state.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def _approved(restores: RestoreRequests, now: datetime, target: str = "h:5432/t") -> RestoreRecord:
    new = NewRestore(
        database="app",
        backup_id="0000abcd",
        mode="into",
        target_db="t",
        target_where=target,
        requester="U0ALICE",
        reason=None,
        required_approvals=1,
        expires_at=now + timedelta(minutes=30),
        preview={},
    )
    pending = restores.create(new, now)
    assert restores.add_approval(pending.id, "U0BOB", now, pending)
    return restores.get(pending.id)


def test_an_approved_restore_waits_until_one_process_claims_it(engine: Engine) -> None:
    restores = RestoreRequests(engine)
    record = _approved(restores, NOW)
    assert (record.status, record.stage, record.owner) == ("running", "queued", None)

    assert restores.claim(record.id, "w:1:a", NOW)
    assert not restores.claim(record.id, "w:2:b", NOW)  # delivered twice: runs once

    claimed = restores.get(record.id)
    assert (claimed.stage, claimed.owner) == ("starting", "w:1:a")


def test_a_restore_the_shared_queue_holds_is_never_abandoned_while_it_waits(
    engine: Engine,
) -> None:
    restores = RestoreRequests(engine)
    record = _approved(restores, NOW - timedelta(hours=2))
    assert restores.hold(record, SHARED_QUEUE)
    assert not restores.hold(record, "w:1:a")  # held under another owner than seen

    assert restores.abandoned(NOW, _dead) == []
    assert restores.claim(record.id, "w:1:a", NOW)


def test_a_waiting_restore_no_queue_took_goes_by_its_heartbeat(engine: Engine) -> None:
    restores = RestoreRequests(engine)
    record = _approved(restores, NOW - timedelta(seconds=40))
    assert restores.abandoned(NOW, _dead) == []
    [found] = restores.abandoned(NOW + timedelta(seconds=6), _dead)
    assert found.id == record.id


def test_a_restore_whose_owner_is_gone_is_abandoned_at_once_and_only_as_seen(
    engine: Engine,
) -> None:
    restores = RestoreRequests(engine)
    held = _approved(restores, NOW, "h:5432/held")
    assert restores.hold(held, DEAD)  # an in-process queue whose process stopped
    running = _approved(restores, NOW, "h:5432/running")
    assert restores.claim(running.id, DEAD, NOW)
    alive = _approved(restores, NOW, "h:5432/alive")
    assert restores.claim(alive.id, "w:1:a", NOW)

    found = restores.abandoned(NOW, _dead)

    assert sorted(r.id for r in found) == sorted([held.id, running.id])
    [seen] = [r for r in found if r.id == running.id]
    restores.heartbeat(running.id, NOW + timedelta(seconds=1))  # beat after the look
    assert not restores.finish(seen.id, "failed", NOW, seen=seen)
    assert restores.finish(seen.id, "failed", NOW, seen=restores.get(seen.id))


def test_a_drill_waits_until_one_process_claims_it_and_is_taken_over_by_the_same_rules(
    engine: Engine,
) -> None:
    drills = DrillLog(engine)

    def start(now: datetime, database: str = "app") -> str:
        drill_id = new_drill_id()
        drills.create(
            drill_id,
            database=database,
            scratch_db=f"backupbot_drill_{database}_{drill_id}",
            actor="scheduler",
            rto_minutes=30,
            backup_id=None,
            now=now,
        )
        return drill_id

    queued = start(NOW - timedelta(hours=1))
    assert drills.get(queued).waiting
    assert drills.hold(drills.get(queued), SHARED_QUEUE)
    assert drills.abandoned(NOW, _dead) == []  # waiting in the shared queue
    assert drills.running("app", NOW, _dead) is not None  # a second drill is refused

    assert drills.claim(queued, DEAD, NOW) and not drills.claim(queued, "w:1:a", NOW)
    [found] = drills.abandoned(NOW, _dead)  # its worker is gone: at once
    assert found.id == queued and found.stage == "starting"
    assert drills.running("app", NOW, _dead) is None

    silent = start(NOW, "web")  # another database: `queued` still holds app's one slot
    assert drills.claim(silent, "w:1:a", NOW)
    drills.heartbeat(silent, NOW, "restore")
    assert [d.id for d in drills.abandoned(NOW + timedelta(seconds=44), _dead)] == [queued]
    stale = {d.id for d in drills.abandoned(NOW + timedelta(seconds=46), _dead)}
    assert stale == {queued, silent}
    assert drills.get(silent).stage == "restore"


def test_only_approved_restores_are_queued_again_not_a_drills_scratch_restore(
    engine: Engine,
) -> None:
    restores = RestoreRequests(engine)
    approved = _approved(restores, NOW, "h:5432/approved")
    scratch = NewRestore(
        database="app",
        backup_id="0000abcd",
        mode=DRILL,
        target_db="backupbot_drill_app_d1",
        target_where="h:5432/backupbot_drill_app_d1",
        requester="scheduler",
        reason="restore drill d1",
        required_approvals=0,
        expires_at=NOW,
        preview={},
    )
    drill_restore = restores.create(scratch, NOW)
    assert (drill_restore.status, drill_restore.stage) == ("running", "queued")

    assert [r.id for r in restores.waiting()] == [approved.id]


def test_this_process_is_alive_and_the_shared_queue_never_dies() -> None:
    assert not owner_is_dead(process_identity())
    assert not owner_is_dead(SHARED_QUEUE)
