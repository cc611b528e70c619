"""The Slack app: a bolt `App` wired to backupbot's services, plus the HTTP front door.

HTTP mode serves bolt's WSGI handler at `/slack/events` on waitress (a production WSGI
server), behind `inbound.verified` (size, signature and timestamp checked on the raw body
before bolt parses it), and answers `GET /` and `GET /healthz` for load balancers.
Socket Mode connects out with the app-level token and still serves the health endpoint
on the same port. The health answer is `ok`, or `degraded: ...` (still 200: the bot
runs, and a restart would not help) with each standing permanent Slack delivery
problem, one per line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient

from backupbot.bot.services import Services
from backupbot.bot.slack import contract as slack_contract
from backupbot.bot.slack import delivery, inbound
from backupbot.bot.slack.flows import Flows
from backupbot.bot.slack.listeners import (
    alert_actions,
    backup_command,
    checklist_actions,
    checklist_reason,
    drill_actions,
    home_actions,
    note_actions,
    restore_actions,
    review_actions,
)
from backupbot.errors import ConfigError

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class SlackApp(App):
    """bolt's App, keeping the signing secret for the front door (`wsgi_app`)."""

    def __init__(self, *, signing_secret: str | None, **kwargs: Any) -> None:
        super().__init__(signing_secret=signing_secret, **kwargs)
        self.signing_secret = signing_secret


def build_web_client(services: Services) -> WebClient:
    if services.slack_client is None:
        raise ConfigError(["SLACK_BOT_TOKEN is not set: export the app's xoxb- bot token"])
    return services.slack_client


def build_app(services: Services) -> SlackApp:
    """A bolt App with every listener registered. Raises `ConfigError` if Slack is not set up."""
    creds = services.slack
    problems = creds.problems_for_serving()
    if services.settings.slack is None:
        problems.append("slack.channel: the config has no `slack:` section; add the channel id")
    if problems:
        raise ConfigError(problems, "Slack set-up")
    app = SlackApp(
        client=build_web_client(services),
        signing_secret=creds.signing_secret.get_secret_value() if creds.signing_secret else None,
        process_before_response=False,
    )
    flow = Flows(services, build_web_client(services)).restore
    backup_command.register(app, services, flow)
    restore_actions.register(app, services, flow)
    checklist_flow = Flows(services, build_web_client(services)).checklist
    checklist_actions.register(app, services, checklist_flow)
    checklist_reason.register(app, services, checklist_flow)
    alert_actions.register(app, services, Flows(services, build_web_client(services)).alert)
    drill_actions.register(app, services, build_web_client(services))
    note_actions.register(app, services, build_web_client(services))
    home_actions.register(app, services, build_web_client(services))
    review_actions.register(app, services, flow)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("unhandled error in a Slack listener", exc_info=error)

    return app


def health_text(health: delivery.DeliveryHealth) -> str:
    """What `/healthz` answers: `ok`, or `degraded: ` and every standing problem."""
    problems = health.problems()
    if not problems:
        return "ok\n"
    return "".join(f"degraded: Slack {p.describe()}\n" for p in problems)


def wsgi_app(
    app: SlackApp | None,
    health: delivery.DeliveryHealth | None = None,
    metrics: Any = None,
) -> WsgiApp:
    """Bolt at EVENTS_PATH (when given) behind `inbound.verified`, health checks at `/`
    and `/healthz`, and (given a CollectorRegistry) Prometheus metrics at `/metrics`."""
    handler = (
        inbound.verified(
            SlackRequestHandler(app, path=slack_contract.EVENTS_PATH), app.signing_secret
        )
        if app
        else None
    )
    standing = delivery.HEALTH if health is None else health

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") == "GET" and path in ("/", "/healthz"):
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [health_text(standing).encode("utf-8")]
        if metrics is not None and environ.get("REQUEST_METHOD") == "GET" and path == "/metrics":
            from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

            body = generate_latest(metrics)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [body]
        if handler is not None and path == slack_contract.EVENTS_PATH:
            return handler(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found\n"]

    return application
