"""Where restores and drills write: a database on the source's own server (the default)
or one of `targets:`, databases on other servers such as a staging server.

A restore `--into staging` overwrites the target's database (after a safety backup when
it holds data); a drill whose database has a drill target creates its scratch database
on that target's server, with the target's credentials, and never touches the target's
own database. The target's name is stored with the restore or drill, and its connection
is looked up again from the configuration when the work runs.
"""

from __future__ import annotations

from collections.abc import Mapping

from backupbot.errors import BackupbotError
from backupbot.phrases import Name, say
from backupbot.settings import DatabaseSettings, TargetSettings
from backupbot.storage.pgconn import ConnInfo, url_with_dbname


class TargetGone(BackupbotError):
    """A stored restore or drill names a target the configuration no longer has."""

    code = "restore.target_gone"


class Targets:
    """The configured targets, and which one each database's drills use."""

    def __init__(
        self,
        targets: Mapping[str, TargetSettings] | None = None,
        drill_targets: Mapping[str, str | None] | None = None,
    ) -> None:
        self._targets = dict(targets or {})
        self._drill_targets = {k: v for k, v in (drill_targets or {}).items() if v}

    @property
    def names(self) -> list[str]:
        return sorted(self._targets)

    def get(self, name: str) -> TargetSettings | None:
        return self._targets.get(name)

    def drill_target(self, database: str) -> str | None:
        """The target whose server a drill of `database` uses (None: the source's)."""
        return self._drill_targets.get(database)

    def conn(self, db: DatabaseSettings, target_name: str | None, dbname: str) -> ConnInfo:
        """The connection to database `dbname` on the target's server, or on `db`'s own
        server when `target_name` is None."""
        return ConnInfo.from_url(self.url(db, target_name, dbname))

    def url(self, db: DatabaseSettings, target_name: str | None, dbname: str) -> str:
        """`conn`'s URL (a secret: it carries the password)."""
        if target_name is None:
            return url_with_dbname(db.url.get_secret_value(), dbname)
        target = self._targets.get(target_name)
        if target is None:
            raise TargetGone(
                say(
                    "The target {target} is no longer configured (targets: in the config), "
                    "so nothing was written. Add it back or make a new request.",
                    target=Name(target_name),
                )
            )
        return url_with_dbname(target.url.get_secret_value(), dbname)
