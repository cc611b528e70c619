"""`make demo`: backupbot end to end on the embedded defaults, nothing to configure.

Starts a throwaway PostgreSQL with the runbook's sample tables, the Slack stand-in and the
bot (SQLite state, local artifact store), then sends signed `/backup now`, `/backup status`
and `/backup log` as a user would, asks for a restore that a second user approves with
the button, runs a restore drill, shows the retention dry run and the monthly checklist,
lets a scheduled backup of an unreachable database fail into an alert that is
acknowledged, prints what the channel shows, and also restores the backup with plain
`zstd | pg_restore` to prove it is good without backupbot.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from backupbot.bot.alert_flow import AlertFlow
from backupbot.bot.checklist_flow import ChecklistFlow
from backupbot.bot.composition import build_services
from backupbot.bot.schedule_actions import scheduled_backup
from backupbot.commands.schedule import ScheduledJob
from backupbot.devkit.botserver import free_port, start_http_bot
from backupbot.devkit.console import render_blocks
from backupbot.devkit.pgcluster import PgCluster
from backupbot.devkit.sample_data import database_fingerprint, load_sample_data
from backupbot.devkit.slack_signer import SignedSlackClient
from backupbot.devkit.slack_standin import SlackStandin
from backupbot.settings import parse_settings

CHANNEL = "C0DEMO"
USER = "U0DEMO"
REVIEWER = "U0REVIEW"


def _say(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def run(workdir: Path) -> int:
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    password = secrets.token_urlsafe(12)
    secret = secrets.token_hex(16)
    with PgCluster(workdir / "pg", password=password).start() as pg, SlackStandin() as slack:
        url = pg.create_database("app")
        dead_port = free_port()
        counts = load_sample_data(url)
        _say(f"throwaway PostgreSQL on port {pg.port}: database app, {sum(counts.values())} rows")
        settings = parse_settings(
            {
                "state_url": f"sqlite:///{workdir / 'state.db'}",
                "storage": {"local": {"path": str(workdir / "backups")}},
                "slack": {"channel": CHANNEL, "approvers": [REVIEWER]},
                "databases": [
                    {"name": "app", "url": "${APP_DATABASE_URL}"},
                    # a server that is down, for the escalation part of the demo
                    {"name": "legacy", "url": f"postgresql://demo@127.0.0.1:{dead_port}/legacy"},
                ],
                "escalation": {"levels": [{"name": "DevOps Lead", "mention": [REVIEWER]}]},
                "logging": {"format": "text", "level": "ERROR"},
            },
            {"APP_DATABASE_URL": url},
        )
        env = {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": secret,
            "SLACK_API_URL": slack.base_url,
        }
        services = build_services(settings, env)
        base_url, server = start_http_bot(services)
        user = SignedSlackClient(f"{base_url}/slack/events", secret, slack)
        try:
            _say("you type: /backup now app --label demo")
            ack = user.slash_command(USER, "now app --label demo", channel_id=CHANNEL)
            print(f"  bot answers at once (HTTP {ack.status}, {ack.elapsed * 1000:.0f} ms):")
            print(render_blocks(ack.json().get("blocks", []), "    "))
            services.jobs.wait_idle(300)
            message = slack.messages(CHANNEL)[-1]
            print(f"  the channel message, updated {len(message.history)} time(s), now reads:")
            print(render_blocks(message.blocks, "    "))

            _say("you type: /backup status")
            user.slash_command(USER, "status", channel_id=CHANNEL)
            services.jobs.wait_idle(60)
            print(render_blocks(slack.response_posts()[-1].body["blocks"]))

            _say("you type: /backup log 5")
            user.slash_command(USER, "log 5", channel_id=CHANNEL)
            services.jobs.wait_idle(60)
            print(render_blocks(slack.response_posts()[-1].body["blocks"]))

            _say("you type: /backup restore app latest --into app_copy --reason demo")
            user.slash_command(
                USER, "restore app latest --into app_copy --reason demo", channel_id=CHANNEL
            )
            services.jobs.wait_idle(60)
            request = slack.messages(CHANNEL)[-1]
            print("  the request in the channel:")
            print(render_blocks(request.blocks, "    "))
            restore = services.restores.recent(limit=1)[0]
            _say(f"{REVIEWER} presses Approve")
            user.block_action(REVIEWER, "restore_approve", restore.id, CHANNEL, request.ts)
            services.jobs.wait_idle(300)
            print("  the request message now reads:")
            print(render_blocks(slack.message(CHANNEL, request.ts).blocks, "    "))
            print("  and its thread:")
            for reply in slack.thread(CHANNEL, request.ts):
                print(render_blocks(reply.blocks, "    "))
            restored = database_fingerprint(pg.url("app_copy")) == database_fingerprint(url)
            print(f"  app_copy identical to the source: {'yes' if restored else 'NO'}")

            _say("you type: /backup drill app  (also runs by itself on the first Monday)")
            user.slash_command(USER, "drill app", channel_id=CHANNEL)
            services.jobs.wait_idle(300)
            print(render_blocks(slack.messages(CHANNEL)[-1].blocks, "    "))

            _say("you type: /backup retention  (a dry run; the daily run deletes)")
            user.slash_command(USER, "retention", channel_id=CHANNEL)
            services.jobs.wait_idle(60)
            print(render_blocks(slack.response_posts()[-1].body["blocks"], "    "))

            _say("the 1st of the month: the scheduler posts the verification checklist")
            client = services.slack_client
            ChecklistFlow(services, client).post_monthly(services.clock.now())
            print(render_blocks(slack.messages(CHANNEL)[-1].blocks, "    "))

            _say("02:00: the scheduled backup of legacy fails (its server is down)")
            job = ScheduledJob("backup:legacy", "backup", "0 2 * * *", database="legacy")
            scheduled_backup(services, client)(job, services.clock.now())
            print(render_blocks(slack.messages(CHANNEL)[-1].blocks, "    "))
            AlertFlow(services, client).step(services.clock.now())
            [open_alert] = services.alerts.open_alerts()
            assert open_alert.message_ts is not None
            alert = slack.message(CHANNEL, open_alert.message_ts)
            print("  within a minute, the alert (and a DM to the DevOps Lead):")
            print(render_blocks(alert.blocks, "    "))
            for reply in slack.thread(CHANNEL, alert.ts)[1:]:
                print("    in its thread:")
                print(render_blocks(reply.blocks, "      "))
            _say(f"{REVIEWER} presses Acknowledge")
            user.block_action(REVIEWER, "alert_ack", open_alert.id, CHANNEL, alert.ts)
            services.jobs.wait_idle(60)
            print(render_blocks(slack.message(CHANNEL, alert.ts).blocks, "    "))

            record = services.catalog.latest("app")
            if record is None or record.status != "succeeded" or not record.artifact_key:
                print("demo failed: the backup did not succeed", file=sys.stderr)
                return 1
            artifact = workdir / "backups" / record.artifact_key
            _say("restore by hand, without backupbot")
            target = pg.create_database("app_restored")
            print(f"  zstd -dc {artifact.name} | pg_restore --no-owner --no-acl -d app_restored")
            with subprocess.Popen(["zstd", "-dc", str(artifact)], stdout=subprocess.PIPE) as z:
                subprocess.run(
                    ["pg_restore", "--no-owner", "--no-acl", "--exit-on-error", "-d", target],
                    stdin=z.stdout,
                    check=True,
                )
            same = database_fingerprint(target) == database_fingerprint(url)
            print(f"  restored database identical to the source: {'yes' if same else 'NO'}")
            print(f"\nArtifacts are in {workdir / 'backups'}; state in {workdir / 'state.db'}.")
            return 0 if same and restored else 1
        finally:
            server.close()
            services.close()


def main() -> int:
    return run(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".demo"))


if __name__ == "__main__":
    sys.exit(main())
