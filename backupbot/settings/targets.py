"""`targets:`, databases on other servers that restores (`--into staging`) and drills
(`drill.target: staging`) may write, and the rules that keep them apart from the
databases being backed up."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from pydantic import SecretStr, field_validator

from backupbot.settings.sections import DatabaseSettings, Strict, check_pg_url
from backupbot.storage.pgconn import ConnInfo

# Target names are what `--into NAME` says, so they follow database-name rules.
TARGET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")


class TargetSettings(Strict):
    """A database on another server (`staging: {url: ${STAGING_URL}}`). A restore into
    it overwrites that database (after a safety backup when it holds data); a drill
    creates its scratch database on the same server with the same credentials."""

    url: SecretStr
    description: str | None = None  # shown with the target, e.g. "staging, eu-west"

    @field_validator("url")
    @classmethod
    def _valid_url(cls, v: SecretStr) -> SecretStr:
        return check_pg_url(v)

    @property
    def conn(self) -> ConnInfo:
        return ConnInfo.from_url(self.url.get_secret_value())


def check_targets(
    targets: Mapping[str, TargetSettings], databases: Sequence[DatabaseSettings]
) -> None:
    """Raise ValueError when a target's name or database collides with a configured
    database: a restore "into staging" must never write the source it came from."""
    names = {d.name for d in databases}
    sources = {_where(ConnInfo.from_url(d.url.get_secret_value())): d.name for d in databases}
    for name, target in targets.items():
        if not TARGET_NAME.match(name):
            raise ValueError(
                f"target {name!r}: use letters, digits, '_' or '-', starting with a letter "
                "or '_' (it is what --into names)"
            )
        if name in names:
            raise ValueError(f"target {name!r} has the name of a configured database")
        if (same := sources.get(_where(target.conn))) is not None:
            raise ValueError(
                f"target {name!r} is the configured database {same!r} itself; restore "
                "over a configured database with --in-place"
            )


def check_drill_targets(
    default: str | None, databases: Sequence[DatabaseSettings], targets: Mapping[str, object]
) -> None:
    """Raise ValueError when `drill.target` or a database's `drill_target` names no target."""
    wanted = [("drill.target", default)] + [
        (f"database {d.name!r} drill_target", d.drill_target) for d in databases
    ]
    for where, name in wanted:
        if name is not None and name not in targets:
            known = ", ".join(sorted(targets)) or "none are configured"
            raise ValueError(f"{where} names no target under targets: ({known})")


def _where(conn: ConnInfo) -> tuple[str, str, str]:
    return (conn.host.lower(), conn.port, conn.dbname)
