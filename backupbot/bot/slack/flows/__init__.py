"""Slack I/O around the services: one flow per feature (backup, restore, drill,
checklist, alert, note), each given its service(s) and a `SlackChannel`. `Flows` is the one place
that takes them out of the `Services` container."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backupbot.bot.slack.flows.alert import AlertFlow
from backupbot.bot.slack.flows.backup import BackupFlow
from backupbot.bot.slack.flows.channel import SlackChannel
from backupbot.bot.slack.flows.checklist import ChecklistFlow
from backupbot.bot.slack.flows.drill import DrillFlow
from backupbot.bot.slack.flows.note import NoteFlow
from backupbot.bot.slack.flows.restore import RestoreFlow
from backupbot.bot.slack.outbox_delivery import OutboxDelivery

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from backupbot.bot.services import Services


class Flows:
    """The flows of one client: `Flows(services, client).restore`, `.drill`, ..."""

    def __init__(self, services: Services, client: WebClient | None) -> None:
        self._services = services
        slack = services.settings.slack
        results = (
            None
            if client is None
            else OutboxDelivery(services.outbox, client, services.incidents, services.clock)
        )
        self.slack = SlackChannel(client, slack.channel if slack else None, services.clock, results)

    @property
    def backup(self) -> BackupFlow:
        s = self._services
        return BackupFlow(s.backups, s.catalog, s.incidents, self.slack)

    @property
    def restore(self) -> RestoreFlow:
        s = self._services
        return RestoreFlow(s.restores, self.slack, s.enqueue_restore, s.reviews)

    @property
    def drill(self) -> DrillFlow:
        return DrillFlow(self._services.drills, self.slack, self._services.enqueue_drill)

    @property
    def checklist(self) -> ChecklistFlow:
        services = self._services
        return ChecklistFlow(
            services.checklists, self.slack, services.incidents, charts=services.status.charts
        )

    def deliver_results(self) -> int:
        """A housekeeping step: send the results the outbox holds that are due."""
        return self.slack.results.deliver_due() if self.slack.results else 0

    @property
    def alert(self) -> AlertFlow:
        return AlertFlow(self._services.alerts, self.slack)

    @property
    def note(self) -> NoteFlow:
        return NoteFlow(self._services.notes, self.slack)
