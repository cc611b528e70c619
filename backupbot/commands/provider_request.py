"""A restore request whose source is the database's provider (`--to TIME` or
`--snapshot ID`) instead of one of the bot's backups.

Before anything is posted the provider is asked for its recovery window, what a restore
`into` new or in place does to the current state, and (for `--snapshot`) its snapshots;
a point outside the window, point-in-time recovery that is off, a snapshot it does not
have or a kind of restore it cannot do is refused in one message. The request keeps the
same approvals as a restore of a backup (stages, the protected in-place policy, expiry),
and its preview carries what the message shows and the verification needs: the newest
verified backup taken at or before the point, whose manifest the result is compared with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backupbot.commands.approval_stages import total_needed
from backupbot.commands.approvals import ApprovalPolicy, CachedApprovers
from backupbot.commands.provider_time import in_zone_text, parse_point
from backupbot.commands.provider_window import ProviderRefused, check_window
from backupbot.commands.restore_model import RESTORE_USAGE, rto_minutes
from backupbot.errors import UsageError
from backupbot.phrases import Command, Name, say
from backupbot.settings import DatabaseSettings, RestoreSettings
from backupbot.storage.catalog import SUCCEEDED, BackupCatalog, BackupRecord
from backupbot.storage.pgconn import ConnInfo
from backupbot.storage.providers.contract import (
    Into,
    ProviderAdapter,
    RecoveryPoint,
    RecoveryWindow,
    RestorePlan,
)
from backupbot.storage.providers.factory import adapter_for
from backupbot.storage.restores import NewRestore, ProviderSource

Adapters = Callable[[DatabaseSettings], ProviderAdapter | None]
_INTO_WORDS = {"new": "into a new branch/instance", "in_place": "in place (--in-place)"}
# What each provider's API does with a snapshot and with a moment, where that is narrower
# than `RestorePlan.supported_into` (which covers both): checked before the request is
# posted, so an approved restore does not fail on it (storage/providers/*.restore).
_SNAPSHOT_INTO: dict[str, tuple[Into, ...]] = {
    "neon": ("new",),
    "supabase": ("in_place",),
    "railway": ("in_place",),
    "render": (),  # its exports are dump files, not restorable through the API
}
_TIME_INTO: dict[str, tuple[Into, ...]] = {"railway": ("new",)}


@dataclass(frozen=True)
class ProviderAsk:
    """The provider half of `/backup restore`: `--to` (with `--tz`) or `--snapshot`."""

    to: str | None = None
    tz: str | None = None
    snapshot: str | None = None
    in_place: bool = False

    @property
    def wanted(self) -> bool:
        return self.to is not None or self.snapshot is not None


def check_ask(ask: ProviderAsk, ref: str | None, into: str | None) -> None:
    """Refuse combinations that mean nothing: --tz without --to, --to with --snapshot,
    a backup id or --into beside a provider point."""
    if ask.tz is not None and ask.to is None:
        raise UsageError("--tz says how to read --to; give --to too.", RESTORE_USAGE)
    if not ask.wanted:
        return
    if ask.to is not None and ask.snapshot is not None:
        raise UsageError("Choose one: --to TIME or --snapshot ID.", RESTORE_USAGE)
    if ref is not None and ref.lower() != "latest":
        raise UsageError(
            "A backup id restores one of the bot's backups; --to and --snapshot restore "
            "through the provider. Choose one.",
            RESTORE_USAGE,
        )
    if into is not None:
        raise UsageError(
            "A provider restore goes to a new branch/instance (the default) or --in-place; "
            "--into is for the bot's own backups.",
            RESTORE_USAGE,
        )


def window_json(window: RecoveryWindow) -> dict[str, Any]:
    return {
        "enabled": window.enabled,
        "earliest": window.earliest.isoformat() if window.earliest else None,
        "latest": window.latest.isoformat() if window.latest else None,
        "retention_days": window.retention_days,
        "reason": window.reason,
        "notes": list(window.notes),
    }


def point_json(point: RecoveryPoint) -> dict[str, Any]:
    return {
        "id": point.id,
        "created_at": point.created_at.isoformat(),
        "name": point.name,
        "status": point.status,
        "size_bytes": point.size_bytes,
    }


def newest_before(catalog: BackupCatalog, database: str, point: datetime) -> BackupRecord | None:
    """The newest verified backup of `database` started at or before `point`."""
    return next(
        (
            b
            for b in catalog.recent(database, 500)
            if b.status == SUCCEEDED and b.started_at <= point and b.manifest
        ),
        None,
    )


def result_name(database: str, now: datetime) -> str:
    """What a new branch/instance/service is called: `<db>-restore-<UTC time>`."""
    return f"{database.lower().replace('_', '-')[:40]}-restore-{now:%Y%m%d-%H%M%S}"


class ProviderPlanner:
    """Turns `--to`/`--snapshot` into a `NewRestore`, refusing what the provider cannot do."""

    def __init__(
        self,
        *,
        databases: Mapping[str, DatabaseSettings],
        catalog: BackupCatalog,
        policy: ApprovalPolicy,
        approvers: CachedApprovers,
        settings: RestoreSettings,
        adapters: Adapters = adapter_for,
    ) -> None:
        self._databases = dict(databases)
        self._catalog = catalog
        self._policy = policy
        self._approvers = approvers
        self._settings = settings
        self._adapters = adapters

    def adapter(self, db: DatabaseSettings) -> ProviderAdapter:
        adapter = self._adapters(db)
        if adapter is None:
            raise UsageError(
                say(
                    "{db} has no provider section (neon:, supabase:, railway: or render: in "
                    "the config), so there is no provider to restore a point in time from. "
                    "Restore one of the bot's backups instead: {cmd}.",
                    db=Name(db.name),
                    cmd=Command("restore", db.name, "latest"),
                ),
                RESTORE_USAGE,
            )
        return adapter

    def new_restore(
        self,
        db: DatabaseSettings,
        ask: ProviderAsk,
        requester: str,
        reason: str | None,
        now: datetime,
    ) -> NewRestore:
        adapter = self.adapter(db)
        into: Into = "in_place" if ask.in_place else "new"
        plan = adapter.plan(into)
        self._check_into(adapter.provider, db, into, plan, ask)
        window = adapter.recovery_window()
        snapshot = None
        if ask.snapshot is not None:
            snapshot = self._snapshot(adapter, db, ask.snapshot)
            point = snapshot.created_at
        else:
            point = parse_point(ask.to or "", ask.tz)
            check_window(adapter.provider, db, window, point, now)
        source = ConnInfo.from_url(db.url.get_secret_value())
        in_place = into == "in_place"
        target_db = source.dbname if in_place else result_name(db.name, now)
        stages = self._approvers.resolve(
            self._policy.stages_for(protected=db.protected, in_place=in_place), requester
        )
        return NewRestore(
            database=db.name,
            backup_id="",
            mode=into,
            target_db=target_db,
            # the lock: in place it is the source itself (no pg_dump restore at once)
            target_where=source.where if in_place else f"{adapter.provider}:{target_db}",
            requester=requester,
            reason=reason,
            required_approvals=total_needed(stages),
            expires_at=now + self._policy.timeout,
            preview=self._preview(db, adapter, plan, window, point, ask, snapshot, source),
            policy=[s.as_json() for s in stages],
            source=ProviderSource(
                provider=adapter.provider,
                into=into,
                point_at=None if snapshot else point,
                snapshot_id=snapshot.id if snapshot else None,
            ),
        )

    def _check_into(
        self, provider: str, db: DatabaseSettings, into: Into, plan: RestorePlan, ask: ProviderAsk
    ) -> None:
        what, can = "", tuple(plan.supported_into)
        if ask.snapshot is not None:
            what, can = " a snapshot", _SNAPSHOT_INTO.get(provider, can)
        elif provider in _TIME_INTO:
            what, can = " a point in time", _TIME_INTO[provider]
        if into in can:
            return
        subject = f"{what.strip()} of {db.name}" if what else db.name
        if not can:
            raise ProviderRefused(
                f"{provider} cannot restore {subject} through its API; use --to TIME or one "
                "of the bot's backups."
            )
        raise ProviderRefused(
            f"{provider} cannot restore {subject} {_INTO_WORDS[into]}; it restores"
            f"{what} " + " or ".join(_INTO_WORDS[i] for i in can) + "."
        )

    def _snapshot(self, adapter: ProviderAdapter, db: DatabaseSettings, ref: str) -> RecoveryPoint:
        points = adapter.recovery_points()
        found = next((p for p in points if p.id == ref), None)
        if found is None:
            listed = ", ".join(p.id for p in points[-5:]) or "none"
            raise ProviderRefused(
                f"{adapter.provider} has no snapshot {ref!r} of {db.name} (newest: {listed}); "
                f"/backup points {db.name} lists them."
            )
        return found

    def _preview(
        self,
        db: DatabaseSettings,
        adapter: ProviderAdapter,
        plan: RestorePlan,
        window: RecoveryWindow,
        point: datetime,
        ask: ProviderAsk,
        snapshot: RecoveryPoint | None,
        source: ConnInfo,
    ) -> dict[str, Any]:
        """What the request message shows and the run needs (no secrets)."""
        manifest = newest_before(self._catalog, db.name, point)
        return {
            "provider": {
                "name": adapter.provider,
                "window": window_json(window),
                "point": point.isoformat(),
                "tz": ask.tz,
                "point_local": in_zone_text(point, ask.tz),
                "snapshot": point_json(snapshot) if snapshot else None,
                "into": plan.into,
                "current_state": plan.current_state,
                "needs_safety_dump": plan.needs_safety_dump,
                "estimated_minutes": plan.estimated_minutes,
            },
            "source": {"name": db.name, "where": source.where},
            "manifest": (
                {
                    "backup_id": manifest.id,
                    "started_at": manifest.started_at.isoformat(),
                    "row_counts": (manifest.manifest or {}).get("row_counts") or {},
                }
                if manifest
                else None
            ),
            "rto_minutes": rto_minutes(self._databases, self._settings, db.name),
            "review_required": False,
        }
