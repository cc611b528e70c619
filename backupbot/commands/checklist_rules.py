"""The monthly Backup Verification Checklist's rules: the runbook's five items evaluated
from the bot's own records.

`evaluate(evidence, policy)` is a pure function over plain facts (backups, drills,
incidents, the last retention run), so good and bad months are table-tested without a
database; `gather_evidence` reads those facts from the state database. The review window
is the `lookback_days` whole UTC days before `now` (today is still running and does not
count for "a backup on each day"). The test-restore item looks further back: a drill since
the start of the previous month also counts, because the checklist is posted on the 1st
and the month's drill (first Monday) has not happened yet then; so does a staging restore
noted with `/backup note` once a second person confirmed it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from backupbot.commands.checklist_items.backups import backups_item
from backupbot.commands.checklist_items.corruption import corruption_item
from backupbot.commands.checklist_items.drill import drill_item
from backupbot.commands.checklist_items.model import (
    CORRUPTION_ACTIONS,
    DASH,
    ITEM_KEYS,
    RETENTION_RUN,
    TIMES,
    ChecklistEvaluation,
    ChecklistEvidence,
    ChecklistPolicy,
    DatabasePolicy,
    ItemResult,
    compact_days,
    item_title,
    message_link,
    period_of,
    previous_month_start,
    window_start,
)
from backupbot.commands.checklist_items.retention import retention_item
from backupbot.commands.checklist_items.size import size_item
from backupbot.commands.provider_facts import ProviderFacts
from backupbot.commands.rto_record import TREND_DRILLS
from backupbot.commands.schedule import ScheduledJob
from backupbot.settings import Settings
from backupbot.storage.checklists import (
    ChecklistEvidenceQueries,
)

__all__ = [
    "DASH",
    "ITEM_KEYS",
    "TIMES",
    "ChecklistEvaluation",
    "ChecklistEvidence",
    "ChecklistPolicy",
    "DatabasePolicy",
    "ItemResult",
    "compact_days",
    "evaluate",
    "gather_evidence",
    "item_title",
    "message_link",
    "period_of",
    "previous_month_start",
    "retention_due_by",
]


def evaluate(evidence: ChecklistEvidence, policy: ChecklistPolicy) -> ChecklistEvaluation:
    """The five items' verdicts and evidence. Pure: the same facts give the same answer."""
    since = window_start(evidence.now, policy.lookback_days)
    return ChecklistEvaluation(
        at=evidence.now,
        since=since,
        items=(
            backups_item(evidence, policy),
            retention_item(evidence, policy),
            drill_item(evidence, policy, evidence.drills_since or since),
            size_item(evidence, policy, since),
            corruption_item(evidence, since),
        ),
    )


# -- gathering --------------------------------------------------------------------------------


def retention_due_by(settings: Settings, now: datetime) -> datetime | None:
    """The retention run should have happened at least once since this time: the
    second-newest firing of its cron (a full cycle of slack for a late or slow run)."""
    own = settings.schedules
    job = ScheduledJob("retention", "retention", own.retention, own.timezone)
    newest = job.previous_fire(now)
    return job.previous_fire(newest - timedelta(microseconds=1)) if newest else None


def gather_evidence(
    queries: ChecklistEvidenceQueries,
    settings: Settings,
    now: datetime,
    recovery: tuple[ProviderFacts, ...] = (),
) -> ChecklistEvidence:
    """The facts `evaluate` needs, read from the state database, and the providers'
    recovery facts (`recovery`) as read by the caller."""
    since = window_start(now, settings.checklist.lookback_days)
    drills_since = min(since, previous_month_start(now, settings.schedules.timezone))
    return ChecklistEvidence(
        now=now,
        backups=tuple(queries.verified_backups(since)),
        drills=tuple(queries.drills(drills_since)),
        recent_drills=tuple(queries.recent_drills(settings.database_names, TREND_DRILLS + 1)),
        incidents=tuple(queries.incidents(since, CORRUPTION_ACTIONS)),
        last_retention_run=queries.last_incident(RETENTION_RUN, all_databases=True),
        retention_due_by=retention_due_by(settings, now),
        drills_since=drills_since,
        staging_restores=tuple(queries.staging_restores(drills_since)),
        recovery=recovery,
    )
