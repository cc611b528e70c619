"""Whether a point in time is one the provider can restore to: point-in-time recovery is
on and the point lies inside its recovery window. Checked when a restore is requested and
again when it runs (the window moves on while a request waits for approval)."""

from __future__ import annotations

from datetime import datetime, timedelta

from backupbot.commands import humanize
from backupbot.errors import BackupbotError
from backupbot.settings import DatabaseSettings
from backupbot.storage.providers.contract import RecoveryWindow


class ProviderRefused(BackupbotError):
    """The provider cannot do the restore asked for (outside its window, PITR off, no
    such snapshot, not in place/new); nothing was requested."""

    code = "restore.provider_refused"


def check_window(
    provider: str,
    db: DatabaseSettings,
    window: RecoveryWindow,
    point: datetime,
    now: datetime,
    since: str = "",
) -> None:
    """`ProviderRefused` unless `provider` can restore `db` to `point` as of `now`;
    `since` prefixes the refusal (e.g. "Since the request, ")."""
    if not window.enabled:
        raise ProviderRefused(
            f"{since}{provider} has no point-in-time recovery for {db.name}"
            + (f": {window.reason}" if window.reason else "")
            + ". Restore a provider snapshot (--snapshot ID, see /backup points "
            f"{db.name}) or one of the bot's backups."
        )
    if point > now + timedelta(seconds=1):
        raise ProviderRefused(f"{humanize.utc(point)} is in the future; give a moment in the past.")
    earliest, latest = window.earliest, window.latest
    if (earliest and point < earliest) or (latest and point > latest):
        raise ProviderRefused(
            f"{since}{humanize.utc(point)} is outside {provider}'s recovery window for "
            f"{db.name}: {humanize.utc(earliest) if earliest else '?'} to "
            f"{humanize.utc(latest) if latest else 'now'}. For an older state restore "
            f"one of the bot's backups (see /backup points {db.name})."
        )
