"""What a restore request looks up: the backup it names (`latest`, or a unique id
prefix) and the database it would write (a new one, `--into` one or a configured target,
or the source itself with `--in-place`), with the refusals that explain a wrong choice."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from backupbot.commands import humanize
from backupbot.commands.restore_model import RESTORE_USAGE
from backupbot.commands.restore_targets import Targets
from backupbot.errors import BackupbotError, UsageError
from backupbot.phrases import Command, Name, Phrase, join, say
from backupbot.settings import DatabaseSettings
from backupbot.storage.catalog import SUCCEEDED, BackupCatalog, BackupRecord
from backupbot.storage.pgconn import ConnInfo

RESERVED_TARGETS = frozenset({"postgres", "template0", "template1"})
_TARGET_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")


def new_target_name(database: str, now: datetime) -> str:
    """`<db>_restored_<UTC timestamp>`, a valid PostgreSQL identifier of at most 63 bytes."""
    base = re.sub(r"[^a-z0-9_]", "_", database.lower())
    suffix = f"_restored_{now:%Y%m%d_%H%M%S}"
    return base[: 63 - len(suffix)] + suffix


@dataclass(frozen=True)
class TargetChoice:
    """Where a restore writes: `mode` (new, into, in_place), the database name, and the
    `targets:` entry whose server it is on (None: the source's own server)."""

    mode: str
    dbname: str
    target_name: str | None = None


def choose_target(
    db: DatabaseSettings, into: str | None, in_place: bool, now: datetime, targets: Targets
) -> TargetChoice:
    """Where a restore of `db` writes. `--into NAME` names a configured target when one
    has that name, else a database on the source's server."""
    source = ConnInfo.from_url(db.url.get_secret_value())
    if in_place and into is not None:
        raise UsageError(
            "Choose one: --into TARGET restores into another database, --in-place "
            "overwrites the source.",
            RESTORE_USAGE,
        )
    if in_place:
        return TargetChoice("in_place", source.dbname)
    if into is None:
        return TargetChoice("new", new_target_name(db.name, now))
    if (target := targets.get(into)) is not None:
        return TargetChoice("into", target.conn.dbname, into)
    if not _TARGET_RE.match(into):
        raise UsageError(
            f"{into!r} is not a usable database name: use letters, digits, '_' or '-', "
            "at most 63, starting with a letter or '_'.",
            RESTORE_USAGE,
        )
    if into.lower() in RESERVED_TARGETS:
        raise UsageError(f"{into} is a system database; choose another target.", RESTORE_USAGE)
    if into == source.dbname:
        raise UsageError(
            f"{into} is the source database itself. To overwrite it, say so with "
            "--in-place (it needs approval and takes a safety backup first).",
            RESTORE_USAGE,
        )
    return TargetChoice("into", into)


def configured_as(databases: Mapping[str, DatabaseSettings], target: ConnInfo) -> str | None:
    """The name of a configured database that the target is, if any."""
    for other in databases.values():
        conn = ConnInfo.from_url(other.url.get_secret_value())
        if (conn.host, conn.port, conn.dbname) == (target.host, target.port, target.dbname):
            return other.name
    return None


class BackupLookup:
    """Finds the verified backup a restore names, or says which ones there are."""

    def __init__(self, catalog: BackupCatalog) -> None:
        self._catalog = catalog

    def recent_text(self, database: str, limit: int = 5) -> Phrase:
        backups = [b for b in self._catalog.recent(database, limit * 4) if b.status == SUCCEEDED]
        if not backups:
            return say(
                "{db} has no verified backup yet: take one with {cmd}.",
                db=Name(database),
                cmd=Command("now", database),
            )
        lines = [
            say(
                "• {id} {at}, {size}",
                id=Name(b.id),
                at=humanize.utc(b.started_at),
                size=humanize.size(b.stored_size),
            )
            + (say(", label {label}", label=Name(b.label)) if b.label else "")
            for b in backups[:limit]
        ]
        return say("Recent verified backups of {db}:\n", db=Name(database)) + join(lines, "\n")

    def resolve(self, database: str, ref: str | None) -> BackupRecord:
        """`latest` (or nothing) or a backup id (a unique prefix of 4+ characters works)."""
        if ref is None or ref.lower() == "latest":
            latest = self._catalog.latest(database, SUCCEEDED)
            if latest is None:
                raise UsageError(self.recent_text(database), RESTORE_USAGE)
            return latest
        ref = ref.lower()
        if len(ref) < 4 or not re.fullmatch(r"[0-9a-f]+", ref):
            raise UsageError(
                say(
                    "{ref} is not a backup id (8 hex characters, as {status} shows) or "
                    "{latest}.\n{recent}",
                    ref=Name(ref),
                    status=Command("status"),
                    latest=Name("latest"),
                    recent=self.recent_text(database),
                ),
                RESTORE_USAGE,
            )
        matches = [b for b in self._catalog.recent(database, 1000) if b.id.startswith(ref)]
        if not matches:
            raise UsageError(
                self._not_found(database, ref) + "\n" + self.recent_text(database),
                RESTORE_USAGE,
            )
        if len(matches) > 1:
            raise UsageError(
                say(
                    "{ref} matches {n} backups ({ids}); give more of the id.",
                    ref=Name(ref),
                    n=len(matches),
                    ids=join(Phrase((Name(b.id),)) for b in matches[:5]),
                ),
                RESTORE_USAGE,
            )
        backup = matches[0]
        if backup.status != SUCCEEDED:
            raise UsageError(
                say("Backup {id} {status}", id=Name(backup.id), status=backup.status)
                + (say(" ({error})", error=backup.error) if backup.error else "")
                + "; only verified backups can be restored.\n"
                + self.recent_text(database),
                RESTORE_USAGE,
            )
        return backup

    def _not_found(self, database: str, ref: str) -> Phrase:
        try:
            other = self._catalog.get(ref)
            return say(
                "Backup {ref} is a backup of {other}, not of {db}.",
                ref=Name(ref),
                other=Name(other.database),
                db=Name(database),
            )
        except BackupbotError:
            return say("There is no backup {ref} of {db}.", ref=Name(ref), db=Name(database))
