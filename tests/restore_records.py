"""A pending restore request for unit tests; override what a test is about."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from backupbot.storage.restores import PENDING, RestoreRecord


def restore_record(created_at: datetime, **overrides: Any) -> RestoreRecord:
    values: dict[str, Any] = {
        "id": "r0a1b2c3d",
        "database": "app",
        "backup_id": "1a2b3c4d",
        "mode": "into",
        "target_db": "app_copy",
        "target_where": "db.example.com:5432/app_copy",
        "status": PENDING,
        "requester": "UALICE",
        "reason": "customer rows deleted by a bad migration",
        "required_approvals": 1,
        "approval_count": 0,
        "approvals": [],
        "created_at": created_at,
        "expires_at": created_at + timedelta(minutes=30),
        "decided_by": None,
        "decided_at": None,
        "channel": "C0BACKUPS",
        "message_ts": "1714564800.000100",
        "preview": {},
        "break_glass": False,
        "announce_pending": False,
        "stage": None,
        "heartbeat_at": None,
        "started_at": None,
        "finished_at": None,
        "safety_backup_id": None,
        "result": {},
        "error": None,
    }
    return RestoreRecord(**{**values, **overrides})
