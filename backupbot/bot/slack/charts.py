"""Posting trend charts in Slack with the current upload flow (`files_upload_v2`:
files.getUploadURLExternal, the bytes to its URL, files.completeUploadExternal).

Best effort: a chart that cannot be drawn or uploaded is logged and told in one line;
it never breaks the answer or the checklist it goes with."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from backupbot.bot.charts import render_chart
from backupbot.commands.trends import ChartData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChartPost:
    """One chart's fate: posted, or the error that stopped it."""

    database: str
    error: str | None = None

    @property
    def posted(self) -> bool:
        return self.error is None


def post_chart(
    client: WebClient, channel: str, data: ChartData, thread_ts: str | None = None
) -> ChartPost:
    try:
        chart = render_chart(data)
        client.files_upload_v2(
            channel=channel,
            content=chart.png,
            filename=chart.filename,
            title=chart.title,
            alt_txt=chart.comment,
            initial_comment=chart.comment,
            thread_ts=thread_ts,
        )
    except SlackApiError as exc:
        error = str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    except (SlackClientError, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    else:
        return ChartPost(data.database)
    log.warning("the %s trend chart was not posted in %s: %s", data.database, channel, error)
    return ChartPost(data.database, error)


def post_charts(
    client: WebClient, channel: str, charts: Sequence[ChartData], thread_ts: str | None = None
) -> list[ChartPost]:
    return [post_chart(client, channel, c, thread_ts) for c in charts]
