"""Where a flow speaks: the Web API client, the bot's channel and the clock.

Each flow takes its own service and one `SlackChannel`, not the whole `Services`
container. Either part may be missing (Slack not configured, or the CLI without a
token): flows that can work without Slack then only skip the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from backupbot.clock import Clock

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from backupbot.bot.slack.outbox_delivery import OutboxDelivery


@dataclass(frozen=True)
class SlackChannel:
    client: WebClient | None
    channel: str | None
    clock: Clock
    results: OutboxDelivery | None = None  # results that must arrive go through it

    def now(self) -> datetime:
        return self.clock.now()

    @property
    def reachable(self) -> bool:
        """Whether there is a client and a channel to post to."""
        return self.client is not None and bool(self.channel)

    def required(self) -> tuple[WebClient, str]:
        """The client and channel of a flow that only exists with Slack configured."""
        assert self.client is not None and self.channel, "Slack is not configured"
        return self.client, self.channel
