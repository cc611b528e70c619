"""The values `AlertService` hands out (an evaluation's changes, the pings to deliver, an
acknowledgement's result) and takes back from the Slack side (what a ping delivered)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from backupbot.phrases import Phrase
from backupbot.storage.alerts import AlertRecord

LATE_AFTER = timedelta(minutes=5)  # a ping sent this long after it was due says so


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation changed. `resolved` alerts are cleared but their resolution is
    not yet shown in Slack; `failed_checks` names checks that raised (alerts left alone)."""

    opened: list[AlertRecord] = field(default_factory=list)
    resolved: list[AlertRecord] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Ping:
    """One escalation level firing for one alert: who to mention (users are also DMed;
    groups are mentioned only) and, for a provider-support level, the contact sentence."""

    alert: AlertRecord
    level_index: int  # 0-based position in the escalation path
    level_count: int
    name: str
    after_minutes: int
    users: tuple[str, ...]
    groups: tuple[str, ...]
    provider_support: bool
    provider: str | None
    provider_contact: str | None
    next_name: str | None
    next_after_minutes: int | None
    claimed_to: int  # `levels_fired` after the claim this ping belongs to
    due_at: datetime
    sent_at: datetime

    @property
    def number(self) -> int:
        return self.level_index + 1

    @property
    def nobody(self) -> bool:
        """No user or group is configured for this level."""
        return not self.users and not self.groups

    @property
    def late(self) -> bool:
        return self.sent_at - self.due_at > LATE_AFTER


@dataclass(frozen=True)
class PingDelivery:
    """What Slack accepted: the thread reply, and the DMs sent and failed (user ids)."""

    thread: bool
    dms: tuple[str, ...] = ()
    dm_failures: tuple[str, ...] = ()

    @property
    def delivered(self) -> bool:
        return self.thread or bool(self.dms)


@dataclass(frozen=True)
class AckResult:
    """The alert after the click; `refusal` explains a click that changed nothing."""

    record: AlertRecord
    refusal: Phrase | str | None = None

    @property
    def acknowledged(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True)
class Repage:
    """An acknowledgement that timed out while the alert kept failing: the alert (now
    unacknowledged), who had acknowledged it and when, and whom to ping again (the
    acknowledger and the current level's people)."""

    alert: AlertRecord
    acknowledged_by: str
    acknowledged_at: datetime
    minutes: int  # since the acknowledgement
    level_name: str | None  # the current level (the last fired), if any fired
    users: tuple[str, ...]
    groups: tuple[str, ...]
