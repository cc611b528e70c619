"""`GET /metrics`: a prometheus_client Collector that reads the state database at scrape
time, so serve and every worker report the same fleet truth and a restart loses nothing.
Process-local facts (scheduler leader, Slack delivery problems) carry `scope="process"`.
A scrape never fails when the state database is away: `backupbot_state_database_up 0`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from importlib.metadata import version
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from backupbot.settings import Settings
from backupbot.storage.models import AlertRow, BackupRow, DrillRow, OutboxRow, RestoreRow

log = logging.getLogger(__name__)
P = "backupbot_"


def _ts(at: datetime | None) -> float | None:
    return at.timestamp() if at is not None else None


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, doc, labels=labels)


def _latest(session: Session, model: Any, where: Any) -> dict[str, Any]:
    """The newest row per database matching `where` (one query)."""
    newest = (
        select(model.database, func.max(model.started_at).label("at"))
        .where(where)
        .group_by(model.database)
        .subquery()
    )
    rows = session.scalars(
        select(model).join(
            newest, (model.database == newest.c.database) & (model.started_at == newest.c.at)
        )
    )
    return {r.database: r for r in rows}


def _backup_families(session: Session, names: set[str]) -> Iterator[Metric]:
    ok = _latest(session, BackupRow, BackupRow.status.in_(["succeeded", "deleted", "deleting"]))
    ok = {d: r for d, r in ok.items() if r.status == "succeeded" and d in names}
    tried = _latest(session, BackupRow, BackupRow.status.in_(["succeeded", "failed"]))
    success = _gauge(
        "backup_last_success_timestamp_seconds", "Last successful backup.", ["database"]
    )
    stored = _gauge("backup_last_stored_bytes", "Stored size of the last success.", ["database"])
    raw = _gauge("backup_last_raw_bytes", "Raw dump size of the last success.", ["database"])
    rows = _gauge("backup_last_rows", "Rows in the last successful backup.", ["database"])
    for db, r in sorted(ok.items()):
        success.add_metric([db], _ts(r.finished_at) or 0.0)
        stored.add_metric([db], float(r.stored_size or 0))
        raw.add_metric([db], float(r.raw_size or 0))
        counts = (r.manifest or {}).get("row_counts") or {}
        rows.add_metric([db], float(sum(int(v) for v in counts.values())))
    attempt = _gauge(
        "backup_last_attempt_timestamp_seconds", "Last finished attempt.", ["database"]
    )
    result = _gauge("backup_last_attempt_success", "1 if the last attempt succeeded.", ["database"])
    duration = _gauge("backup_last_duration_seconds", "Duration of the last attempt.", ["database"])
    for db, r in sorted(tried.items()):
        if db not in names or r.finished_at is None:
            continue
        attempt.add_metric([db], r.finished_at.timestamp())
        result.add_metric([db], 1.0 if r.status == "succeeded" else 0.0)
        duration.add_metric([db], (r.finished_at - r.started_at).total_seconds())
    yield from (success, attempt, result, duration, stored, raw, rows)
    # Catalog entries by status are a gauge: a succeeded backup later becomes deleted.
    total = _gauge("backups", "Backups in the catalog by status.", ["database", "status"])
    running = _gauge("backup_running", "1 while a backup of the database runs.", ["database"])
    busy: set[str] = set()
    for db, status, n in session.execute(
        select(BackupRow.database, BackupRow.status, func.count()).group_by(
            BackupRow.database, BackupRow.status
        )
    ):
        if db in names:
            total.add_metric([db, status], float(n))
            busy |= {db} if status == "running" else set()
    for db in sorted(names):
        running.add_metric([db], 1.0 if db in busy else 0.0)
    yield from (total, running)


def _restore_families(session: Session, settings: Settings) -> Iterator[Metric]:
    names = set(settings.database_names)
    total = _gauge("restores", "Restores by mode and status.", ["database", "mode", "status"])
    for db, mode, status, n in session.execute(
        select(RestoreRow.database, RestoreRow.mode, RestoreRow.status, func.count()).group_by(
            RestoreRow.database, RestoreRow.mode, RestoreRow.status
        )
    ):
        if db in names:
            total.add_metric([db, mode, status], float(n))
    yield total
    drills = _gauge("drills", "Drills by status.", ["database", "status"])
    for db, status, n in session.execute(
        select(DrillRow.database, DrillRow.status, func.count()).group_by(
            DrillRow.database, DrillRow.status
        )
    ):
        if db in names:
            drills.add_metric([db, status], float(n))
    yield drills
    last = _latest(session, DrillRow, DrillRow.status.in_(["passed", "failed"]))
    at = _gauge("drill_last_timestamp_seconds", "When the last drill finished.", ["database"])
    passed = _gauge("drill_last_passed", "1 if the last drill passed.", ["database"])
    took = _gauge(
        "drill_last_duration_seconds", "Recovery time the last drill achieved.", ["database"]
    )
    for db, r in sorted(last.items()):
        if db in names and r.finished_at is not None:
            at.add_metric([db], r.finished_at.timestamp())
            passed.add_metric([db], 1.0 if r.status == "passed" else 0.0)
            if r.total_seconds is not None:
                took.add_metric([db], float(r.total_seconds))
    target = _gauge("rto_target_seconds", "The recovery-time objective.", ["database"])
    for d in settings.databases:
        target.add_metric([d.name], 60.0 * (d.rto_minutes or settings.restore.rto_minutes))
    yield from (at, passed, took, target)


def _queue_families(session: Session) -> Iterator[Metric]:
    alerts = _gauge("alerts_open", "Open escalation alerts.", ["database", "condition"])
    for db, cond, n in session.execute(
        select(AlertRow.database, AlertRow.condition, func.count())
        .where(AlertRow.status == "open")
        .group_by(AlertRow.database, AlertRow.condition)
    ):
        alerts.add_metric([db or "", cond], float(n))
    yield alerts
    jobs = _gauge("jobs", "Backups, restores and drills queued or running.", ["kind", "state"])
    for kind, model in (("backup", BackupRow), ("restore", RestoreRow), ("drill", DrillRow)):
        counts = {"queued": 0, "running": 0}
        for status, stage, n in session.execute(
            select(model.status, model.stage, func.count())
            .where(model.status.in_(["running", "waiting", "approved", "starting"]))
            .group_by(model.status, model.stage)
        ):
            queued = status in ("waiting", "approved") or stage == "queued"
            counts["queued" if queued else "running"] += n
        for state, n in counts.items():
            jobs.add_metric([kind, state], float(n))
    yield jobs
    outbox = _gauge("slack_outbox", "Slack result messages by outbox status.", ["status"])
    for status, n in session.execute(
        select(OutboxRow.status, func.count()).group_by(OutboxRow.status)
    ):
        outbox.add_metric([status], float(n))
    yield outbox


class StateCollector(Collector):
    """Reads the fleet's state at scrape time; `leader` and `problems` are this process's."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        leader: Callable[[], bool] = lambda: False,
        problems: Callable[[], int] = lambda: 0,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._leader = leader
        self._problems = problems

    def collect(self) -> Iterable[Metric]:
        info = _gauge("info", "backupbot's version.", ["version"])
        info.add_metric([version("backupbot")], 1.0)
        yield info
        local = _gauge("scheduler_leader", "1 if this process leads the scheduler.", ["scope"])
        local.add_metric(["process"], 1.0 if self._leader() else 0.0)
        yield local
        slack = _gauge("slack_delivery_problems", "Standing Slack problems here.", ["scope"])
        slack.add_metric(["process"], float(self._problems()))
        yield slack
        families: list[Metric] = []
        up = 1.0
        try:
            with Session(self._engine) as session:
                names = set(self._settings.database_names)
                families += _backup_families(session, names)
                families += _restore_families(session, self._settings)
                families += _queue_families(session)
        except Exception as exc:  # the state database is away: answer what we can
            log.warning("metrics: state database unavailable (%s)", type(exc).__name__)
            families, up = [], 0.0
        state = _gauge("state_database_up", "1 if the state database answered.", [])
        state.add_metric([], up)
        yield state
        yield from families


def registry(collector: StateCollector) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg
