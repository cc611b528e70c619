"""One exception tree for the whole program.

Every error a user can cause or meet is a `BackupbotError`. Its `phrase` says what went
wrong and what to do next, as plain wording with typed facts (`backupbot/phrases.py`) that
each front end renders; `str()` is the plain text logs and incident records keep. Internal
detail (stderr, tracebacks) travels in attributes and goes to the log only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from backupbot.phrases import Actor, Command, Name, Phrase, as_phrase, say, to_json


class BackupbotError(Exception):
    """Base of every expected failure. `str(err)` is safe to show a user; `code` names
    the kind of failure for records and scripts."""

    code = "error"
    recorded = False  # set once an incident record keeps it (`commands/refusals.py`)

    def __init__(self, message: Phrase | str = "") -> None:
        self.phrase = as_phrase(message)
        super().__init__(str(self.phrase))

    def refusal(self) -> dict[str, Any]:
        """The facts an incident record keeps about this refusal or failure: its code, the
        plain text, and the phrase (so each front end can word it its own way later)."""
        return {"code": self.code, "reason": str(self), "phrase": to_json(self.phrase)}


class ConfigError(BackupbotError):
    """The configuration file is missing or invalid. Each problem names the key and the fix."""

    code = "config.invalid"

    def __init__(self, problems: list[str], source: str = "configuration") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source} is invalid:\n" + "\n".join(f"  - {p}" for p in problems))


class UsageError(BackupbotError):
    """A command was malformed. `command` names the registry command whose usage each
    front end shows beside the message (`ALL_COMMANDS`: every command's; "": none)."""

    code = "usage"
    ALL_COMMANDS = "*"

    def __init__(self, message: Phrase | str, command: str = "") -> None:
        self.command = command
        super().__init__(message)


class UnknownDatabase(UsageError):
    """The named database is not in the configuration."""

    code = "usage.unknown_database"


class BackupAlreadyRunning(BackupbotError):
    """A backup of this database is queued or in progress; a second one is refused."""

    code = "backup.already_running"

    def __init__(
        self,
        database: str,
        backup_id: str,
        started_by: str,
        started_at: datetime,
        stage: str | None = None,
    ) -> None:
        self.database = database
        self.backup_id = backup_id
        self.started_by = started_by
        self.started_at = started_at
        at = started_at.astimezone(UTC)
        when = at.strftime("%Y-%m-%d %H:%M:%S UTC" if at.second else "%Y-%m-%d %H:%M UTC")
        state = "waiting for a worker" if stage == "queued" else f"{stage} stage" if stage else ""
        detail = f"id {backup_id}, {state}" if state else f"id {backup_id}"
        super().__init__(
            say(
                "A backup of {db} is already running ({detail}), started by {who} at {when}. "
                "Wait for it to finish; {status} shows its result.",
                db=Name(database),
                detail=detail,
                who=Actor(started_by),
                when=when,
                status=Command("status", database),
            )
        )


class CommandFailed(BackupbotError):
    """An external program (pg_dump, pg_restore, ...) failed.

    The message is for people; `returncode` and `stderr` are for the log.
    """

    code = "command.failed"

    def __init__(
        self, message: Phrase | str, *, program: str, returncode: int | None, stderr: str
    ) -> None:
        self.program = program
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(message)


class PgToolMissing(BackupbotError):
    """No suitable pg_dump/pg_restore binary is installed."""

    code = "pg.tool_missing"


class DatabaseUnreachable(BackupbotError):
    """The database server refused the connection, the password was wrong, or it is down."""

    code = "database.unreachable"


class StoreError(BackupbotError):
    """The artifact store failed (S3 error, disk full, missing bucket).

    `permanent` tells whether retrying the same operation can help.
    """

    code = "store.failed"

    def __init__(self, message: Phrase | str, *, permanent: bool = True) -> None:
        self.permanent = permanent
        super().__init__(message)


class VerificationFailed(BackupbotError):
    """A stored artifact did not match what was written, or could not be read back."""

    code = "verification.failed"


class NotFound(BackupbotError):
    """A backup, request or record the user named does not exist."""

    code = "not_found"


class RestoreConflict(BackupbotError):
    """Another restore of the same target database is open or running."""

    code = "restore.conflict"

    def __init__(self, target: str, restore_id: str, requester: str, status: str) -> None:
        self.restore_id = restore_id
        super().__init__(
            say(
                "Restore {rid} into {target} is already {status} (requested by {who}). Only "
                "one restore per target database can be open: wait for it, or cancel it first.",
                rid=Name(restore_id),
                target=Name(target),
                status=status,
                who=Actor(requester),
            )
        )


class SlackUnreachable(BackupbotError):
    """A message that people must see (a request to approve) could not be posted."""

    code = "slack.unreachable"


class StateUnavailable(BackupbotError):
    """The bot's own state database refused or lost a write or read; nothing changed."""

    code = "state.unavailable"


class ProviderError(BackupbotError):
    """A database provider's API (Neon, Supabase, Railway, Render) refused or failed.

    `permanent` tells whether asking again can help (a 401 or a 400 cannot; a 429, 423
    or 5xx that outlasted the retries might later); `status` is the HTTP status, if any."""

    code = "provider.failed"

    def __init__(
        self, message: Phrase | str, *, permanent: bool = True, status: int | None = None
    ) -> None:
        self.permanent = permanent
        self.status = status
        super().__init__(message)
