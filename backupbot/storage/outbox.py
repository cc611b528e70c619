"""The Slack outbox: messages that must arrive (a backup's, restore's or drill's result),
written before they are sent and marked after (healthchecks' pattern), so a Slack outage
or a stopped bot delays a result instead of losing it.

A row is `pending` until a process claims it (`sending`, a guarded update on the status
and the attempts it saw), then `delivered`, `failed` (Slack refused it for good, or it
kept failing for `GIVE_UP_AFTER`) or `superseded` (a newer version of the same `key`, the
same logical message, was written while it waited: the newest state wins). A claim
older than `CLAIM_STALE` belongs to a process that stopped mid-send and is due again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, insert, or_, select, update

from backupbot.storage.models import OutboxRow
from backupbot.storage.unit_of_work import read_session, transaction

PENDING, SENDING, DELIVERED = "pending", "sending", "delivered"
FAILED, SUPERSEDED = "failed", "superseded"
CLAIM_STALE = timedelta(minutes=2)
GIVE_UP_AFTER = timedelta(hours=24)
BACKOFF_FIRST = timedelta(seconds=5)
BACKOFF_MAX = timedelta(minutes=15)


def backoff(attempts: int, retry_after: float | None = None) -> timedelta:
    """The wait before attempt `attempts + 1`: 5 s doubling to 15 min, or longer if
    Slack's Retry-After asked for it."""
    wait: timedelta = min(BACKOFF_FIRST * (2 ** max(0, attempts - 1)), BACKOFF_MAX)
    return max(wait, timedelta(seconds=retry_after or 0))


@dataclass(frozen=True)
class OutboxItem:
    id: int
    key: str
    channel: str
    ts: str | None  # the message to update; None: post a new one
    thread_ts: str | None
    message: dict[str, Any]
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    error: str | None = None

    @classmethod
    def from_row(cls, row: OutboxRow) -> OutboxItem:
        return cls(
            row.id,
            row.key,
            row.channel,
            row.ts,
            row.thread_ts,
            dict(row.message or {}),
            row.status,
            row.attempts,
            row.created_at,
            row.next_attempt_at,
            row.error,
        )


class Outbox:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(
        self,
        key: str,
        channel: str,
        message: dict[str, Any],
        now: datetime,
        *,
        ts: str | None = None,
        thread_ts: str | None = None,
        not_before: datetime | None = None,
    ) -> OutboxItem:
        """Write a message to send; an older version of `key` still waiting is superseded.
        `not_before`: nobody sends it before then (the writer tries first itself)."""
        with transaction(self._engine) as conn:
            conn.execute(
                update(OutboxRow)
                .where(OutboxRow.key == key, OutboxRow.status == PENDING)
                .values(status=SUPERSEDED, finished_at=now)
            )
            new_id = conn.execute(
                insert(OutboxRow).values(
                    key=key,
                    channel=channel,
                    ts=ts,
                    thread_ts=thread_ts,
                    message=message,
                    status=PENDING,
                    attempts=0,
                    created_at=now,
                    next_attempt_at=not_before or now,
                )
            ).inserted_primary_key
        assert new_id is not None
        return self.get(int(new_id[0]))

    def claim(self, item: OutboxItem, now: datetime) -> bool:
        """Take `item` to send it: True for exactly one caller (it must still be as seen:
        waiting, or claimed by a process that stopped, with the same attempts)."""
        with transaction(self._engine) as conn:
            result = conn.execute(
                update(OutboxRow)
                .where(OutboxRow.id == item.id, OutboxRow.attempts == item.attempts)
                .where(
                    or_(
                        OutboxRow.status == PENDING,
                        (OutboxRow.status == SENDING) & (OutboxRow.claimed_at < now - CLAIM_STALE),
                    )
                )
                .values(status=SENDING, claimed_at=now)
            )
        return result.rowcount == 1

    def delivered(self, item_id: int, ts: str | None, now: datetime) -> None:
        self._finish(item_id, DELIVERED, now, ts=ts, error=None)

    def failed(self, item_id: int, error: str, now: datetime) -> None:
        self._finish(item_id, FAILED, now, error=error)

    def retry_later(self, item_id: int, error: str, at: datetime, *, ts: str | None) -> None:
        """Give the claimed item back, to be tried again at `at` (one more attempt
        counted); `ts`: the message to update by then, if it is known now."""
        values: dict[str, Any] = {"status": PENDING, "next_attempt_at": at, "error": error}
        if ts is not None:
            values["ts"] = ts
        with transaction(self._engine) as conn:
            conn.execute(
                update(OutboxRow)
                .where(OutboxRow.id == item_id, OutboxRow.status.in_((PENDING, SENDING)))
                .values(attempts=OutboxRow.attempts + 1, **values)
            )

    def _finish(self, item_id: int, status: str, now: datetime, **values: Any) -> None:
        with transaction(self._engine) as conn:
            conn.execute(
                update(OutboxRow)
                .where(OutboxRow.id == item_id, OutboxRow.status.in_((PENDING, SENDING)))
                .values(status=status, finished_at=now, **values)
            )

    def due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """Items to send now, oldest first (so versions of one message go in order)."""
        stmt = (
            select(OutboxRow)
            .where(
                or_(
                    (OutboxRow.status == PENDING) & (OutboxRow.next_attempt_at <= now),
                    (OutboxRow.status == SENDING) & (OutboxRow.claimed_at < now - CLAIM_STALE),
                )
            )
            .order_by(OutboxRow.id)
            .limit(limit)
        )
        with read_session(self._engine) as session:
            return [OutboxItem.from_row(r) for r in session.scalars(stmt)]

    def delivered_ts(self, key: str) -> str | None:
        """The message a delivered version of `key` posted or updated, if any."""
        stmt = (
            select(OutboxRow.ts)
            .where(OutboxRow.key == key, OutboxRow.status == DELIVERED, OutboxRow.ts.is_not(None))
            .order_by(OutboxRow.id.desc())
            .limit(1)
        )
        with read_session(self._engine) as session:
            return session.scalars(stmt).first()

    def waiting(self, now: datetime, older_than: timedelta) -> int:
        """How many items have waited longer than `older_than` (for `/healthz`)."""
        stmt = select(func.count()).where(
            OutboxRow.status.in_((PENDING, SENDING)), OutboxRow.created_at < now - older_than
        )
        with read_session(self._engine) as session:
            return int(session.scalar(stmt) or 0)

    def get(self, item_id: int) -> OutboxItem:
        with read_session(self._engine) as session:
            row = session.get(OutboxRow, item_id)
            assert row is not None, f"no outbox item {item_id}"
            return OutboxItem.from_row(row)

    def for_key(self, key: str) -> list[OutboxItem]:
        """Every version of `key`, oldest first."""
        stmt = select(OutboxRow).where(OutboxRow.key == key).order_by(OutboxRow.id)
        with read_session(self._engine) as session:
            return [OutboxItem.from_row(r) for r in session.scalars(stmt)]
