"""A deployment of backupbot as a user has it: a config file written the way the README
shows, the real `backupbot serve` process, Slack (the stand-in) reached over HTTP or
Socket Mode, and the `backupbot` CLI against the same config.

Tests drive it only from the outside: signed slash commands and clicks, what the
stand-in received, the files in the store, the state database's records, the CLI.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from backupbot.devkit.botserver import free_port
from backupbot.devkit.serve_process import (
    ServeProcess,
    backupbot_executable,
    user_environment,
    write_config,
)
from backupbot.devkit.slack_signer import SignedSlackClient, SlackResponse, SocketModeSlackClient
from backupbot.devkit.slack_standin import PostedMessage, ResponseUrlPost, SlackStandin
from backupbot.storage.incidents import Incident, IncidentLog

CHANNEL = "C0BACKUPS"
REQUESTER = "U0ALICE"
REVIEWER = "U0REVIEW"
LEAD = "U0LEAD"
WAIT = 60.0  # seconds any single outcome may take on a loaded 2-core CI machine


@dataclass
class Deployment:
    """One installation: its directory, config, environment, Slack and serve process."""

    transport: str  # "http" | "socket"
    state_kind: str  # "sqlite" | "postgresql"
    workdir: Path
    standin: SlackStandin
    exported: dict[str, str]  # what the user exported for backupbot
    config: dict[str, Any]
    state_url: str
    serve: ServeProcess | None = None
    _engine: Any = field(default=None, repr=False)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.workdir / "backupbot.yml"

    @property
    def store_dir(self) -> Path:
        return self.workdir / "backups"

    def start(self) -> ServeProcess:
        """Write the config and start `backupbot serve`; ready once it answers /healthz
        and, in Socket Mode, has connected to Slack."""
        write_config(self.config_path, self.config)
        self.serve = ServeProcess(
            self.config_path,
            user_environment(self.exported),
            port=free_port(),
            log_path=self.workdir / "serve.log",
        ).start()
        if self.transport == "socket":
            assert self.standin.wait_for_socket(WAIT), "serve did not connect in Socket Mode"
        return self.serve

    def stop(self) -> int:
        assert self.serve is not None
        return self.serve.stop()

    def close(self) -> None:
        if self.serve is not None:
            self.serve.kill()
        if self._engine is not None:
            self._engine.dispose()

    # -- Slack, as people use it ---------------------------------------------------------

    def client(self) -> SignedSlackClient | SocketModeSlackClient:
        if self.transport == "socket":
            return SocketModeSlackClient(self.standin, timeout=WAIT)
        assert self.serve is not None
        secret = self.exported["SLACK_SIGNING_SECRET"]
        return SignedSlackClient(self.serve.events_url, secret, self.standin, timeout=WAIT)

    def slash(self, user: str, text: str) -> SlackResponse:
        """`/backup text` typed by `user` in the channel: the bot's immediate answer."""
        return self.client().slash_command(user, text, channel_id=CHANNEL)

    def click(
        self,
        user: str,
        action_id: str,
        value: str,
        message_ts: str,
        response_url: str | None = None,
    ) -> SlackResponse:
        return self.client().block_action(
            user, action_id, value, CHANNEL, message_ts, response_url=response_url
        )

    def click_answer(self, user: str, action_id: str, value: str, message_ts: str) -> str:
        """Click, and wait for the private answer only the clicker sees (its text)."""
        url = self.standin.new_response_url()
        assert self.click(user, action_id, value, message_ts, url).status == 200
        post = self.wait_response(lambda p: p.id == url.rsplit("/", 1)[-1])
        return str(post.body.get("text", ""))

    def tick(
        self, user: str, action_id: str, selected: list[str], message_ts: str, block_id: str
    ) -> SlackResponse:
        return self.client().checkboxes_action(
            user, action_id, selected, CHANNEL, message_ts, block_id
        )

    def wait_message(
        self, predicate: Callable[[PostedMessage], bool], timeout: float = WAIT
    ) -> PostedMessage:
        """The first channel message (current version) for which `predicate` holds."""
        found: list[PostedMessage] = []

        def check() -> bool:
            found[:] = [m for m in self.standin.messages(CHANNEL) if predicate(m)][:1]
            return bool(found)

        assert self.standin.wait_for(check, timeout), self._explain("no such channel message")
        return found[0]

    def wait_response(
        self, predicate: Callable[[ResponseUrlPost], bool], timeout: float = WAIT
    ) -> ResponseUrlPost:
        """The first response_url post (a reply only the requester sees) matching."""
        found: list[ResponseUrlPost] = []

        def check() -> bool:
            found[:] = [p for p in self.standin.response_posts() if predicate(p)][:1]
            return bool(found)

        assert self.standin.wait_for(check, timeout), self._explain("no such response_url post")
        return found[0]

    def _explain(self, what: str) -> str:
        tail = self.serve.log_text()[-3000:] if self.serve else ""
        return f"{what}; serve's log ends with:\n{tail}"

    # -- the state database and the CLI ----------------------------------------------------

    def incidents(self, limit: int = 200) -> list[Incident]:
        """The incident log, newest first, read from the state database."""
        if self._engine is None:
            self._engine = create_engine(self.state_url)
        return IncidentLog(self._engine).recent(limit)

    def actions(self, database: str | None = None) -> list[str]:
        return [i.action for i in self.incidents() if database in (None, i.database)]

    def wait_incident(self, predicate: Callable[[Incident], bool]) -> Incident:
        """The newest incident record matching `predicate`, once there is one. A message
        can show a state change a moment before the clicker's thread has written its
        record (another step redrew it), so tests wait for the record; a Slack call always
        follows the record, waking the wait."""
        found: list[Incident] = []

        def check() -> bool:
            found[:] = [i for i in self.incidents() if predicate(i)][:1]
            return bool(found)

        assert self.standin.wait_for(check, WAIT), self._explain("no such incident record")
        return found[0]

    def wait_action(self, action: str, database: str | None = None) -> Incident:
        return self.wait_incident(lambda i: i.action == action and database in (None, i.database))

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`backupbot --config <file> ARGS` run from another directory, as cron would."""
        argv = [backupbot_executable(), "--config", str(self.config_path), *args]
        result = subprocess.run(
            argv,
            cwd="/",
            env=user_environment(self.exported),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"{argv[3:]} failed:\n{result.stdout}{result.stderr}"
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json", check=False).stdout)


def new_deployment(
    *,
    transport: str,
    state_kind: str,
    workdir: Path,
    standin: SlackStandin,
    pg: Any,
    databases: dict[str, str],
    extra: dict[str, Any] | None = None,
) -> Deployment:
    """A README-style config for `databases` (name -> URL, each exported as a variable)."""
    secret = secrets.token_hex(16)
    exported = {"SLACK_BOT_TOKEN": standin.bot_token, "SLACK_API_URL": standin.base_url}
    if transport == "socket":
        exported["SLACK_APP_TOKEN"] = standin.app_token
    else:
        exported["SLACK_SIGNING_SECRET"] = secret
    if state_kind == "postgresql":
        name = f"state_{secrets.token_hex(4)}"
        state_url = pg.create_database(name).replace("postgresql://", "postgresql+psycopg://", 1)
        exported["BACKUPBOT_STATE_URL"] = state_url
        state_setting = "${BACKUPBOT_STATE_URL}"
    else:
        state_url = f"sqlite:///{workdir / 'backupbot.db'}"
        state_setting = "sqlite:///backupbot.db"
    entries = []
    for name, url in databases.items():
        variable = f"{name.upper()}_DATABASE_URL"
        exported[variable] = url
        entries.append({"name": name, "url": "${" + variable + "}"})
    config: dict[str, Any] = {
        "state_url": state_setting,
        "storage": {"local": {"path": "./backups"}},
        "slack": {"channel": CHANNEL, "approvers": [REVIEWER]},
        "databases": entries,
        **(extra or {}),
    }
    workdir.mkdir(parents=True, exist_ok=True)
    return Deployment(transport, state_kind, workdir, standin, exported, config, state_url)
