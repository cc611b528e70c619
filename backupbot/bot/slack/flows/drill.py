"""Restore drills in Slack: one channel message per drill, posted when it starts and
updated in place with its stage and then its Pass/Fail result.

Only Slack I/O lives here; the drill itself is `DrillService`'s. `/backup drill` and the
monthly schedule `queue` drills (the message is posted at once, a worker runs each drill
and updates it); `backupbot drill` runs one here (`run`). When Slack cannot be reached
the drill still runs and is recorded; only the message is missing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from backupbot.bot.slack import delivery
from backupbot.bot.slack.blocks import drill as drill_blocks
from backupbot.bot.slack.flows.channel import SlackChannel
from backupbot.bot.slack.kit import Message
from backupbot.commands.drill_model import DrillStage, StageListener
from backupbot.commands.drill_reminder import DrillReminder, DrillReminders
from backupbot.errors import BackupbotError
from backupbot.storage.drills import DrillRecord

if TYPE_CHECKING:
    from backupbot.commands.drill import DrillService

log = logging.getLogger(__name__)


class DrillFlow:
    def __init__(
        self, drills: DrillService, slack: SlackChannel, enqueue: Callable[[DrillRecord], None]
    ) -> None:
        self._client = slack.client
        self.channel = slack.channel
        self._slack = slack
        self._drills = drills
        self._enqueue = enqueue

    def run(
        self, database: str | None, actor: str, on_stage: StageListener = lambda _s: None
    ) -> list[DrillRecord]:
        """Drill `database`, or every configured database one after another (None), in
        this process.

        For one named database a drill that cannot start (already running, unknown name)
        raises its `BackupbotError`; for all databases it is logged and skipped.
        """
        return [self.execute(record, on_stage) for record in self._start(database, actor)]

    def queue(
        self, database: str | None, actor: str, skip: frozenset[str] = frozenset()
    ) -> list[DrillRecord]:
        """Start drills of `database` (or of every configured database) and queue them
        for the workers; each drill's message is posted now. A drill that could not run
        at all (no verified backup, server unreachable) is already failed and shown.
        Raises as `run` does; a drill the queue refuses is failed and its error raised."""
        started = []
        for record in self._start(database, actor, skip):
            self._post(record)
            if not record.finished:
                self._enqueue(self._drills.get(record.id))
            started.append(self._drills.get(record.id))
        return started

    def _start(
        self, database: str | None, actor: str, skip: frozenset[str] = frozenset()
    ) -> list[DrillRecord]:
        names = [database] if database is not None else self._drills.database_names
        names = [n for n in names if n not in skip]
        started = []
        for name in names:
            try:
                started.append(self._drills.start(name, actor))
            except BackupbotError as exc:
                if database is not None:
                    raise
                log.warning("restore drill of %s not started: %s", name, exc)
        return started

    def execute(
        self, record: DrillRecord, on_stage: StageListener = lambda _s: None
    ) -> DrillRecord:
        """Claim the drill, run it, and show the result in its message (posted now if it
        was not yet). A drill another process has claimed is left to it."""
        if not record.finished and not self._drills.claim(record.id):
            log.info("drill %s is not waiting any more; not running it", record.id)
            return self._drills.get(record.id)
        current = self._drills.get(record.id)
        ts = current.message_ts if current.channel == self.channel else None
        ts = ts or self._post(current)
        lock = threading.Lock()

        def stage(progress: DrillStage) -> None:
            on_stage(progress)
            if ts is None:
                return
            with lock:
                current = self._drills.get(record.id)
                self._update(ts, drill_blocks.drill_message(current, self._now(), progress))

        final = self._drills.execute(record.id, stage, claimed=True)
        result = drill_blocks.drill_message(final, self._now())
        results, channel = self._slack.results, self.channel
        if results is not None and channel is not None:  # through the outbox: it arrives
            results.send(f"drill:{final.id}", channel, result, ts=ts)
        elif ts is not None:
            self._update(ts, result)
        return final

    def remind_step(self, reminders: DrillReminders) -> DrillReminder | None:
        """Post the reminder before the next scheduled drill, once it is due."""
        if self._client is None or self.channel is None:
            return None
        reminder = reminders.due()
        if reminder is not None:
            message = drill_blocks.drill_reminder(reminder, self._now())
            if delivery.post(self._client, self.channel, message) is None:
                log.warning("the drill reminder for %s could not be posted", reminder.firing)
        return reminder

    def _post(self, record: DrillRecord) -> str | None:
        channel = self.channel
        if self._client is None or channel is None:
            return None
        ts = delivery.post(self._client, channel, drill_blocks.drill_message(record, self._now()))
        if ts is not None:
            self._drills.set_message(record.id, channel, ts)
        return ts

    def _update(self, ts: str, message: Message) -> None:
        channel = self.channel
        if self._client is not None and channel is not None:
            delivery.update(self._client, channel, ts, message)

    def _now(self) -> datetime:
        return self._slack.now()
