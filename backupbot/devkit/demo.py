"""`make demo`: backupbot end to end, run the way users deploy it.

Starts a throwaway PostgreSQL with the runbook's sample tables and the Slack stand-in,
writes a `backupbot.yml` the way the README's Configuration section shows, and starts the
real `backupbot serve` process in Socket Mode (the README's first set-up path). Then, as
people in the channel would: `/backup now`, `/backup status` and `/backup log`; a restore
that a second person approves with the button; a restore drill; the retention dry run.
serve's own scheduler posts the monthly checklist and runs the scheduled backup of a
server that is down, which fails into an alert that pings the on-call reviewer, who
acknowledges it. Last, the backup is restored with plain `zstd -dc | pg_restore` to prove
it is good without backupbot. The terminal shows what the channel shows.

Exit code 0 only when every check held; serve's log is in `<dir>/serve.log`.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backupbot.devkit.botserver import free_port
from backupbot.devkit.console import render_message
from backupbot.devkit.manual_restore import restore_by_hand
from backupbot.devkit.pgcluster import PgCluster
from backupbot.devkit.sample_data import database_fingerprint, load_sample_data
from backupbot.devkit.screenshots import save_view_png
from backupbot.devkit.serve_process import ServeFailed, ServeProcess, user_environment, write_config
from backupbot.devkit.slack_signer import SlackResponse, SocketModeSlackClient
from backupbot.devkit.slack_standin import PostedMessage, ResponseUrlPost, SlackStandin

CHANNEL = "C0DEMO"
USER = "U0DEMO"  # alice, who runs the commands
REVIEWER = "U0REVIEW"  # bob, who approves restores and is first on the escalation path
# How the terminal shows Slack ids, as Slack shows them to people.
NAMES = {USER: "@alice", REVIEWER: "@bob", CHANNEL: "#backups"}
WAIT = 60.0  # the longest any single outcome may take before the demo gives up
# When serve's scheduler fires, counted from writing the config: after serve's start-up
# (about 2 s) and the on-demand part (about 2.5 s), so the story usually reads in the order
# it happens. Were the machine slower, they would fire earlier; nothing depends on it.
CHECKLIST_IN = timedelta(seconds=6)
LEGACY_BACKUP_IN = timedelta(seconds=7)
_BACKUP_ID = re.compile(r"\b[0-9a-f]{8}\b")


class DemoFailed(Exception):
    """Something the demo waits for did not happen; the message says what."""


def cron_at(t: datetime) -> str:
    """A daily 6-field cron (seconds first) that fires at `t`'s time of day (UTC)."""
    return f"{t.second} {t.minute} {t.hour} * * *"


def demo_config(now: datetime) -> dict[str, Any]:
    """The README's Configuration, for this demo: two databases (URLs from the
    environment), SQLite state and backups next to the file, bob approves restores and is
    the first escalation level; the checklist and legacy's backup due in a few seconds."""
    soon = now.replace(microsecond=0) + timedelta(seconds=1)
    return {
        "state_url": "sqlite:///backupbot.db",
        "storage": {"local": {"path": "./backups"}},
        "slack": {"channel": CHANNEL, "approvers": [REVIEWER]},
        "databases": [
            {"name": "app", "url": "${APP_DATABASE_URL}"},
            {
                "name": "legacy",
                "url": "${LEGACY_DATABASE_URL}",
                "schedule": cron_at(soon + LEGACY_BACKUP_IN),
            },
        ],
        "schedules": {"checklist": cron_at(soon + CHECKLIST_IN)},
        "escalation": {
            "levels": [{"name": "DevOps Lead", "after_minutes": 0, "mention": [REVIEWER]}]
        },
    }


def _say(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def _has_buttons(message: PostedMessage) -> bool:
    return any(b.get("type") == "actions" for b in message.blocks)


def _button(message: PostedMessage, action_id: str) -> str:
    """The value of the button `action_id` on `message` (what a click sends)."""
    for block in message.blocks:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise DemoFailed(f"no {action_id} button on the message {message.text!r}")


def _everything(message: PostedMessage) -> str:
    return message.text + json.dumps(message.blocks)


class Demo:
    """The channel as alice and bob use it, and what they check."""

    def __init__(self, standin: SlackStandin) -> None:
        self.standin = standin
        self.client = SocketModeSlackClient(standin, timeout=WAIT)
        self.checks: dict[str, bool] = {}

    # -- what people do and see ----------------------------------------------------------

    def show(self, message: PostedMessage | ResponseUrlPost, indent: str = "    ") -> None:
        if isinstance(message, ResponseUrlPost):
            text, blocks = str(message.body.get("text", "")), message.body.get("blocks")
        else:
            text, blocks = message.text, message.blocks
        print(render_message(text, blocks, indent, NAMES), flush=True)

    def slash(self, user: str, text: str) -> SlackResponse:
        print(f"{NAMES[user]} types: /backup {text}", flush=True)
        answer = self.client.slash_command(
            user, text, channel_id=CHANNEL, user_name=NAMES[user][1:]
        )
        if answer.status != 200:
            raise DemoFailed(f"/backup {text} was answered with status {answer.status}")
        return answer

    def click(self, user: str, action_id: str, message: PostedMessage, label: str) -> None:
        print(f"{NAMES[user]} presses {label}", flush=True)
        value = _button(message, action_id)
        self.client.block_action(user, action_id, value, CHANNEL, message.ts)

    def wait_message(
        self, predicate: Callable[[PostedMessage], bool], what: str, channel: str = CHANNEL
    ) -> PostedMessage:
        """The first message in `channel` (as it reads now) for which `predicate` holds."""
        found: list[PostedMessage] = []

        def check() -> bool:
            found[:] = [m for m in self.standin.messages(channel) if predicate(m)][:1]
            return bool(found)

        if not self.standin.wait_for(check, WAIT):
            raise DemoFailed(f"{what} did not appear within {WAIT:.0f} s")
        return found[0]

    def wait_reply(self, after: int, words: str, what: str) -> ResponseUrlPost:
        """The first reply only the asker sees, posted after the first `after`, that
        contains `words`."""
        found: list[ResponseUrlPost] = []

        def check() -> bool:
            posts = self.standin.response_posts()[after:]
            found[:] = [p for p in posts if words in json.dumps(p.body)][:1]
            return bool(found)

        if not self.standin.wait_for(check, WAIT):
            raise DemoFailed(f"{what} did not arrive within {WAIT:.0f} s")
        return found[0]

    def ask(self, text: str, words: str) -> None:
        """alice's `/backup text`, and the reply only she sees."""
        before = len(self.standin.response_posts())
        self.slash(USER, text)
        reply = self.wait_reply(before, words, f"the answer to /backup {text}")
        print("  the bot answers (only you see this):")
        self.show(reply)

    def check(self, name: str, held: bool) -> bool:
        self.checks[name] = held
        return held

    # -- the story -----------------------------------------------------------------------

    def backup_now(self) -> str:
        _say("a backup before a risky deploy")
        answer = self.slash(USER, "now app --label demo")
        body = answer.json()
        found = _BACKUP_ID.search(str(body.get("text", "")) + json.dumps(body.get("blocks", [])))
        if found is None:
            raise DemoFailed(f"the answer to /backup now names no backup: {answer.body!r}")
        backup_id = found.group()
        print(f"  the bot answers at once ({answer.elapsed * 1000:.0f} ms, only you see this):")
        print(render_message(str(body.get("text", "")), body.get("blocks"), "    ", NAMES))
        done = self.wait_message(
            lambda m: backup_id in _everything(m) and ("succeeded" in m.text or "failed" in m.text),
            f"the result of backup {backup_id}",
        )
        if done.history:
            first = done.history[0]
            print("  it posts in #backups:")
            print(render_message(first["text"], first["blocks"], "    ", NAMES))
        print(f"  and updates that message in place ({len(done.history)} time(s)); it now reads:")
        self.show(done)
        self.check("the backup succeeded and was verified", "succeeded" in done.text)
        return backup_id

    def status_and_log(self) -> None:
        _say("what is backed up, and what happened")
        self.ask("status", "Backup status")
        print()
        self.ask("log 5", "Incident log")

    def restore(self, source_url: str, target_url: str) -> None:
        _say("a restore needs a second person")
        before = {m.ts for m in self.standin.messages(CHANNEL)}
        self.slash(USER, "restore app latest --into app_copy --reason 'check the demo data'")
        request = self.wait_message(
            lambda m: m.ts not in before and "restore_approve" in json.dumps(m.blocks),
            "the restore request",
        )
        print("  the request in #backups (alice cannot approve her own):")
        self.show(request)
        self.click(REVIEWER, "restore_approve", request, "Approve")
        final = self.wait_message(
            lambda m: m.ts == request.ts and not _has_buttons(m) and " running." not in m.text,
            "the restore's result",
        )
        report = self.wait_message(
            lambda m: (
                m.thread_ts == request.ts and ("Recovered in" in m.text or "failed" in m.text)
            ),
            "the restore's report in its thread",
        )
        print("  the request message now ends:")
        self.show_tail(final, request)
        print("  and its thread:")
        for reply in self.standin.thread(CHANNEL, request.ts):
            if reply.ts != request.ts:
                self.show(reply)
        same = database_fingerprint(target_url) == database_fingerprint(source_url)
        print(f"  app_copy identical to the source (schema and every row): {_yes(same)}")
        self.check("the approved restore succeeded", "succeeded" in final.text)
        self.check("app_copy is identical to app", same and "Recovered in" in report.text)

    def show_tail(self, final: PostedMessage, original: PostedMessage) -> None:
        """The blocks of `final` that are new since `original` (the rest reads the same)."""
        old = [json.dumps(b, sort_keys=True) for b in original.blocks]
        changed = [
            b
            for i, b in enumerate(final.blocks)
            if i >= len(old) or json.dumps(b, sort_keys=True) != old[i]
        ]
        print(render_message(final.text, changed or final.blocks, "    ", NAMES), flush=True)

    def drill(self) -> None:
        _say("a restore drill (the scheduler also runs one on the first Monday of the month)")
        before = {m.ts for m in self.standin.messages(CHANNEL)}
        self.slash(USER, "drill app")
        drill = self.wait_message(
            lambda m: (
                m.ts not in before
                and m.text.startswith("Restore drill of app")
                and ("passed" in m.text or "failed" in m.text)
            ),
            "the drill's result",
        )
        print("  in #backups:")
        self.show(drill)
        self.check("the drill passed", "passed" in drill.text)

    def retention(self) -> None:
        _say("retention, as a dry run (the daily run at 04:00 deletes)")
        self.ask("retention", "Retention dry run")

    def checklist(self) -> None:
        _say("the 1st, 09:00 (in this demo: now): the scheduler posts the monthly checklist")
        checklist = self.wait_message(
            lambda m: m.text.startswith("Backup verification checklist"), "the monthly checklist"
        )
        print("  in #backups, for the team to work through and sign off:")
        self.show(checklist)
        self.check("the scheduler posted the checklist", True)

    def failed_backup_alert(self) -> None:
        _say("02:00 (in this demo: now): the scheduled backup of legacy fails, its server is down")
        failed = self.wait_message(
            lambda m: m.text.startswith("Backup of legacy failed"), "legacy's failed backup"
        )
        print("  in #backups:")
        self.show(failed)
        alert = self.wait_message(
            lambda m: m.text.startswith("Alert (legacy), open"), "the alert about legacy"
        )
        print("  right after, the alert:")
        self.show(alert)
        ping = self.wait_message(
            lambda m: m.thread_ts == alert.ts and f"<@{REVIEWER}>" in _everything(m),
            "the escalation ping in the alert's thread",
        )
        print("  in its thread, the first escalation level is pinged:")
        self.show(ping, "      ")
        dm = self.wait_message(lambda m: True, "the DM to bob", channel=REVIEWER)
        print("  and bob gets a direct message:")
        self.show(dm, "      ")
        self.click(REVIEWER, "alert_ack", alert, "Acknowledge")
        acked = self.wait_message(
            lambda m: m.ts == alert.ts and "acknowledged" in m.text.lower(),
            "the acknowledged alert",
        )
        print("  the alert now ends:")
        self.show_tail(acked, alert)
        self.check("the alert was acknowledged", not _has_buttons(acked))

    def pictures(self, workdir: Path) -> None:
        """alice opens the Home tab and asks for the chart: both saved as PNG files."""
        _say("App Home and the trend chart, saved as pictures")
        seen = len(self.standin.published_views(USER))
        self.client.app_home_opened(USER)
        if not self.standin.wait_for(lambda: len(self.standin.published_views(USER)) > seen, WAIT):
            raise DemoFailed("no App Home view was published")
        view = self.standin.published_views(USER)[-1]
        lines = save_view_png(view, workdir / "app-home.png", NAMES)
        before = len(self.standin.uploaded_files(CHANNEL))
        self.slash(USER, "status app --chart")

        def uploaded() -> list[bytes]:
            files = self.standin.uploaded_files(CHANNEL)[before:]
            return [f.data or b"" for f in files if "app" in f.filename]

        if not self.standin.wait_for(lambda: bool(uploaded()), WAIT):
            raise DemoFailed("the trend chart of app was not uploaded")
        chart = uploaded()[0]
        (workdir / "trend-chart.png").write_bytes(chart)
        print(f"  {workdir / 'app-home.png'}: the Home view ({lines} lines)")
        print(f"  {workdir / 'trend-chart.png'}: the chart as uploaded ({len(chart)} bytes)")
        self.check("App Home published and the chart uploaded as a PNG", chart[:4] == b"\x89PNG")

    def restore_by_hand(self, pg: PgCluster, store: Path, backup_id: str, source_url: str) -> None:
        _say("restore the backup by hand, without backupbot")
        artifacts = sorted(store.glob(f"app/*-{backup_id}.dump.zst"))
        if len(artifacts) != 1:
            raise DemoFailed(f"expected one artifact of backup {backup_id} in {store}")
        artifact = artifacts[0]
        manifest = json.loads(
            artifact.with_name(artifact.name[: -len(".dump.zst")] + ".manifest.json").read_text()
        )
        digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
        print(f"  cd {artifact.parent}")
        print(f"  sha256sum {artifact.name}")
        print(f"    {digest}")
        print(f"    the manifest's sha256 is the same: {_yes(digest == manifest['sha256'])}")
        print("  createdb app_restored")
        print(f"  zstd -dc {artifact.name} | pg_restore --no-owner --no-acl -d app_restored")
        target = pg.create_database("app_restored")
        restore_by_hand(artifact, target)
        same = database_fingerprint(target) == database_fingerprint(source_url)
        print(f"  app_restored identical to the source (schema and every row): {_yes(same)}")
        self.check("the artifact matches its manifest", digest == manifest["sha256"])
        self.check("restored by hand, identical to app", same)


def _yes(held: bool) -> str:
    return "yes" if held else "NO"


def run(workdir: Path) -> int:
    started = time.monotonic()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    workdir = workdir.resolve()
    password = secrets.token_urlsafe(12)
    with PgCluster(workdir / "pg", password=password).start() as pg, SlackStandin() as standin:
        app_url = pg.create_database("app")
        counts = load_sample_data(app_url)
        legacy_url = f"postgresql://demo@127.0.0.1:{free_port()}/legacy"  # nobody listens
        _say("set-up")
        print(f"  throwaway PostgreSQL on port {pg.port}: database app, {len(counts)} tables,")
        print(f"  {sum(counts.values())} rows; legacy points at {legacy_url.split('@')[1]},")
        print("  where no server is running. A Slack stand-in plays the workspace: alice (who")
        print("  types the commands) and bob (who approves restores and is on call), in #backups.")
        planned = datetime.now(UTC)
        config = write_config(workdir / "backupbot.yml", demo_config(planned))
        exported = {
            "SLACK_BOT_TOKEN": standin.bot_token,
            "SLACK_APP_TOKEN": standin.app_token,
            "SLACK_API_URL": standin.base_url,
            "APP_DATABASE_URL": app_url,
            "LEGACY_DATABASE_URL": legacy_url,
        }
        print(f"  {config} (as in the README):")
        for line in config.read_text(encoding="utf-8").splitlines():
            print(f"    {line}")
        print(f"  ({CHANNEL} is #backups, {REVIEWER} is bob. legacy's schedule and the checklist's")
        print("  are due a few seconds from now, as 6-field crons with seconds first, so the")
        print("  scheduler's work happens during the demo instead of at 02:00 and on the 1st.)")
        serve = ServeProcess(
            config, user_environment(exported), port=free_port(), log_path=workdir / "serve.log"
        )
        print("  With SLACK_BOT_TOKEN, SLACK_APP_TOKEN, SLACK_API_URL, APP_DATABASE_URL and")
        print("  LEGACY_DATABASE_URL exported (and nothing else), in that directory it runs:")
        print(f"    backupbot --config backupbot.yml serve --port {serve.port}")
        demo = Demo(standin)
        try:
            for _attempt in range(3):
                serve.start(WAIT)
                if not standin.wait_for_socket(WAIT):
                    raise DemoFailed("serve did not connect to Slack in Socket Mode")
                if datetime.now(UTC) < planned + CHECKLIST_IN:
                    break
                # Up after the schedules' time of day (a slow machine): a fresh install
                # never runs a firing from before its first start, so start again with
                # later times rather than wait a day.
                print("  (serve came up after the schedules' times; starting again, later)")
                serve.stop()
                standin.wait_for(lambda: not standin.socket_connected(), WAIT)
                standin.reset()  # the first start's messages and alerts are not this run's
                (workdir / "backupbot.db").unlink(missing_ok=True)
                planned = datetime.now(UTC) + timedelta(seconds=5 * (_attempt + 1))
                write_config(config, demo_config(planned))
            else:
                raise DemoFailed("serve never came up before the schedules' times")
            print(f"  serve is up (pid {serve.pid}) and connected to Slack over Socket Mode.")
            backup_id = demo.backup_now()
            demo.status_and_log()
            demo.restore(app_url, pg.url("app_copy"))
            demo.drill()
            demo.retention()
            demo.checklist()
            demo.failed_backup_alert()
            demo.pictures(workdir)
            demo.restore_by_hand(pg, workdir / "backups", backup_id, app_url)
        except (DemoFailed, ServeFailed, TimeoutError, subprocess.CalledProcessError) as err:
            print(f"\ndemo failed: {err}", file=sys.stderr)
            print(f"serve's log ends with:\n{_tail(serve.log_path)}", file=sys.stderr)
            serve.kill()
            return 1
        finally:
            if serve.running():
                _say("stopping serve with SIGTERM, as systemd or Docker would")
                try:
                    code = serve.stop()
                except ServeFailed as err:
                    print(f"  {err}", file=sys.stderr)
                    code = -1
                print(f"  serve exited with {code}")
                demo.check("serve stopped cleanly on SIGTERM", code == 0)
    _say(f"done in {time.monotonic() - started:.1f} s")
    failed = [name for name, held in demo.checks.items() if not held]
    for name, held in demo.checks.items():
        print(f"  {'✅' if held else '❌'} {name}")
    print(f"\nThe directory {workdir} holds backupbot.yml, the state database (backupbot.db),")
    print("the backups with their manifests (backups/), and serve's JSON log (serve.log).")
    return 1 if failed else 0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main() -> int:
    # The channel's emoji on a terminal that cannot show them become "?", not a crash.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")
    return run(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".demo"))


if __name__ == "__main__":
    sys.exit(main())
