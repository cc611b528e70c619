"""What each database's provider says about its own recovery: point-in-time recovery on
or off, the window, the last provider backup, and its retention against the runbook's
30 days. `/backup status`, the checklist's item 1 and the alert check read these facts;
the provider APIs are asked at most once per `ttl` per process, and a provider whose API
cannot be read is a warning, never a failed status reply."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backupbot.clock import Clock
from backupbot.commands import humanize
from backupbot.commands.conditions import PROVIDER_RECOVERY, Finding
from backupbot.commands.provider_support import provider_name
from backupbot.errors import ProviderError
from backupbot.phrases import Phrase, say
from backupbot.settings import DatabaseSettings
from backupbot.storage.providers.contract import ProviderAdapter, ProviderHealth, RecoveryWindow

log = logging.getLogger(__name__)

TTL = timedelta(minutes=5)
_TOLERANCE_DAYS = 0.01  # a 30-day window read a few seconds short is still 30 days


@dataclass(frozen=True)
class ProviderFacts:
    """One database's recovery facts as its provider's API gave them at `checked_at`;
    `error` instead when the API could not be read."""

    database: str
    provider: str
    checked_at: datetime
    expected_days: int  # what the runbook asks (0: not compared)
    window: RecoveryWindow | None = None
    health: ProviderHealth | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return provider_name(self.provider)

    @property
    def short_window(self) -> bool:
        w = self.window
        return bool(
            w is not None
            and w.enabled
            and self.expected_days
            and w.retention_days is not None
            and w.retention_days < self.expected_days - _TOLERANCE_DAYS
        )

    @property
    def warnings(self) -> list[Phrase]:
        """What an operator should act on: an unreadable API, recovery off, a window
        shorter than the runbook's, no automated backups."""
        p = self.label
        if self.error is not None:
            return [say("{p}'s API could not be read: {error}", p=p, error=self.error)]
        out: list[Phrase] = []
        w = self.window
        if w is not None and not w.enabled:
            out.append(
                say(
                    "{p} point-in-time recovery is off: {reason}. Only the bot's own dumps "
                    "can restore this database.",
                    p=p,
                    reason=w.reason or "the provider says it is not available",
                )
            )
        elif self.short_window and w is not None and w.retention_days is not None:
            out.append(
                say(
                    "{p} keeps {days} of history; the runbook asks for {expected} days. "
                    "Raise it in {p}'s settings, or count on the bot's dumps beyond that.",
                    p=p,
                    days=_days(w.retention_days),
                    expected=self.expected_days,
                )
            )
        if (w is None or w.enabled) and self.health and self.health.automated_backups is False:
            out.append(say("{p} reports no automated backups for this database.", p=p))
        return out

    def line(self, now: datetime) -> Phrase:
        """One line for status and the checklist: recovery on/off, window, last backup."""
        p = self.label
        if self.error is not None:
            return say("{p} recovery: unknown (its API could not be read)", p=p)
        w = self.window
        if w is None or not w.enabled:
            return say("{p} point-in-time recovery: off", p=p)
        parts = [f"{p} point-in-time recovery: on"]
        if w.retention_days is not None:
            expected = f" (runbook {self.expected_days})" if self.expected_days else ""
            parts.append(f"{_days(w.retention_days)} kept{expected}")
        if w.earliest is not None:
            parts.append(f"back to {humanize.utc(w.earliest)}")
        last = self.health.last_backup_at if self.health else None
        if last is not None:
            parts.append(f"last {p} backup {humanize.age(last, now)}")
        return say("{text}", text=", ".join(parts))

    def as_json(self) -> dict[str, Any]:
        """The JSON-safe facts for records and the checklist's evidence (no secrets)."""
        w = self.window
        return {
            "provider": self.provider,
            "checked_at": self.checked_at.isoformat(),
            "error": self.error,
            "pitr": None if w is None else w.enabled,
            "retention_days": None if w is None else w.retention_days,
            "earliest": None if w is None or w.earliest is None else w.earliest.isoformat(),
            "expected_days": self.expected_days,
            "warnings": [str(x) for x in self.warnings],
        }


def _days(days: float) -> str:
    return f"{days:.0f} days" if days >= 1.5 else f"{days * 24:.0f} hours"


def read_facts(
    db: DatabaseSettings, adapter: ProviderAdapter, expected_days: int, now: datetime
) -> ProviderFacts:
    """Ask the provider; an API failure becomes the facts' `error`."""
    try:
        window = adapter.recovery_window()
        health = adapter.health()
    except ProviderError as exc:
        return ProviderFacts(db.name, db.provider, now, expected_days, error=str(exc))
    except Exception as exc:  # an answer the adapter did not expect: a warning, not a crash
        log.warning("reading %s's recovery facts failed", db.provider, exc_info=True)
        error = f"an unexpected answer ({type(exc).__name__})"
        return ProviderFacts(db.name, db.provider, now, expected_days, error=error)
    return ProviderFacts(db.name, db.provider, now, expected_days, window, health)


class ProviderFactsService:
    """The facts of every database with a provider section, cached for `ttl`, read in
    parallel (one slow provider does not add up across databases)."""

    def __init__(
        self,
        databases: Sequence[DatabaseSettings],
        adapters: Callable[[DatabaseSettings], ProviderAdapter | None],
        clock: Clock,
        ttl: timedelta = TTL,
    ) -> None:
        self._databases = [d for d in databases if d.provider_section is not None]
        self._build = adapters
        self._clock = clock
        self._ttl = ttl
        self._adapters: dict[str, ProviderAdapter] = {}
        self._cache: dict[str, ProviderFacts] = {}
        self._lock = threading.Lock()

    @property
    def configured(self) -> list[str]:
        return [d.name for d in self._databases]

    def facts(self, names: Iterable[str] | None = None) -> dict[str, ProviderFacts]:
        """The facts of the named databases (default: all) that have a provider section."""
        wanted = set(self.configured if names is None else names)
        dbs = [d for d in self._databases if d.name in wanted]
        now = self._clock.now()
        with self._lock:
            fresh = {
                d.name: self._cache[d.name]
                for d in dbs
                if d.name in self._cache and now - self._cache[d.name].checked_at < self._ttl
            }
        stale = [d for d in dbs if d.name not in fresh]
        if stale:
            with ThreadPoolExecutor(max_workers=min(8, len(stale))) as pool:
                read = list(pool.map(lambda d: self._read(d, now), stale))
            with self._lock:
                for f in read:
                    self._cache[f.database] = f
            fresh.update({f.database: f for f in read})
        return {d.name: fresh[d.name] for d in dbs}

    def _read(self, db: DatabaseSettings, now: datetime) -> ProviderFacts:
        section = db.provider_section
        assert section is not None
        with self._lock:
            adapter = self._adapters.get(db.name)
        if adapter is None:
            built = self._build(db)
            assert built is not None
            adapter = built
            with self._lock:
                self._adapters[db.name] = adapter
        return read_facts(db, adapter, section.expected_recovery_days, now)


class ProviderConditions:
    """PROVIDER_RECOVERY for each database whose provider section asks for alerts
    (`alert_on_recovery_gap: true`): holds while its provider facts carry a warning."""

    conditions: tuple[str, ...] = (PROVIDER_RECOVERY,)

    def __init__(self, service: ProviderFactsService, databases: Sequence[DatabaseSettings]):
        self._service = service
        self._names = [
            d.name
            for d in databases
            if d.provider_section is not None and d.provider_section.alert_on_recovery_gap
        ]

    def check(self, now: datetime) -> list[Finding]:
        if not self._names:
            return []
        findings = []
        for name, facts in self._service.facts(self._names).items():
            warnings = facts.warnings
            if warnings:
                findings.append(
                    Finding(PROVIDER_RECOVERY, name, warnings[0], details=facts.as_json())
                )
        return findings
