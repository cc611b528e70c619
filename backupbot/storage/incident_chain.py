"""The incident log's hash chain: each record holds the SHA-256 of the previous record's
hash and its own canonical content, so an edited, removed or reordered record breaks the
chain at that point (the database's append-only triggers stop honest mistakes; the chain
makes anything else visible).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64  # the "previous hash" of the first record


def canonical(
    *,
    at: datetime,
    actor: str,
    action: str,
    outcome: str,
    database: str | None,
    backup_id: str | None,
    details: dict[str, Any],
) -> bytes:
    """The record's content as stable bytes: sorted keys, UTC time to the microsecond."""
    content = {
        "at": at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "outcome": outcome,
        "database": database,
        "backup_id": backup_id,
        "details": details,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link(prev_hash: str, content: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + content).hexdigest()


@dataclass(frozen=True)
class ChainRecord:
    id: int
    prev_hash: str | None
    hash: str | None
    content: bytes


@dataclass(frozen=True)
class ChainCheck:
    """The result of walking the chain: intact, or the first record that breaks it."""

    records: int
    first_broken_id: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.first_broken_id is None


def verify(records: Iterable[ChainRecord]) -> ChainCheck:
    """Walk records in id order; stop at the first that does not link to the one before."""
    prev, count = GENESIS, 0
    for rec in records:
        if rec.prev_hash != prev:
            problem = "it does not follow the record before it (a record was removed or reordered)"
            return ChainCheck(count, rec.id, problem)
        if rec.hash != link(prev, rec.content):
            return ChainCheck(count, rec.id, "its content does not match its hash (it was edited)")
        prev, count = rec.hash, count + 1
    return ChainCheck(count)
