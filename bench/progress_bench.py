"""Benchmark: does a rate-limited Slack slow a backup down?

Run by hand from the repository root:

    .venv/bin/python bench/progress_bench.py --size-mb 300

It starts a throwaway PostgreSQL cluster under bench/.work/progress/, fills a database with
about --size-mb MB of rows, and runs backupbot's channel flow (`BackupFlow.run`, with the
Web API client `serve` builds, retries included) against the Slack stand-in, interleaved
round-robin, --reps times each:

  slack ok        every Slack call answered
  update 429      chat.update answers 429 with Retry-After 2 for the whole backup (the
                  fault is lifted once the backup is finished, so the result can land)
  before (sync)   --with-before: the listener of earlier versions, a synchronous
                  chat.update with the client's 5x 429 retry inside the dump (1 run)

It prints the median backup duration (the catalog's start to finish), the ratio to
`slack ok`, and how many chat.update calls Slack received per backup.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from backupbot.bot.composition import Services, build_services  # noqa: E402
from backupbot.bot.slack import delivery  # noqa: E402
from backupbot.bot.slack.blocks import backup as backup_blocks  # noqa: E402
from backupbot.bot.slack.flows import Flows  # noqa: E402
from backupbot.devkit.pgcluster import PgCluster, find_pg_bin_dir  # noqa: E402
from backupbot.devkit.slack_standin import SlackStandin  # noqa: E402
from backupbot.settings import parse_settings  # noqa: E402

CHANNEL = "C0BENCH"
RETRY_AFTER = 2


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fill(url: str, size_mb: int) -> None:
    """About `size_mb` MB of rows (text that compresses like real data, about 3:1)."""
    rows = size_mb * 1_000_000 // 250
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, kind text, body text)"
        )
        conn.execute(
            """INSERT INTO events
               SELECT g, now() - g * interval '1 second', 'kind-' || (g %% 17),
                      md5(g::text) || md5((g * 7)::text) || repeat(md5((g %% 1000)::text), 5)
               FROM generate_series(1, %s) g""",
            (rows,),
        )
        conn.execute("VACUUM ANALYZE events")


def timed_backup(
    services: Services, client: Any, before: bool, lift: SlackStandin | None = None
) -> tuple[float, bool]:
    """One `/backup now`-style run: (backup duration in s, whether it succeeded). With
    `lift`, its faults are cleared once the backup itself is finished."""
    record = services.backups.start("bench", "UBENCH", None)
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.1):
            if services.catalog.get(record.id).status not in ("queued", "running"):
                assert lift is not None
                lift.clear_faults()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    if lift is not None:
        watcher.start()
    try:
        if before:
            ts = delivery.post(client, CHANNEL, backup_blocks.backup_started(record))

            def listener(progress: Any) -> None:
                if ts:
                    delivery.update(
                        client, CHANNEL, ts, backup_blocks.backup_progress(record, progress)
                    )

            final = services.backups.run(record, listener)
        else:
            final, _message, _shown = Flows(services, client).backup.run(record)
    finally:
        stop.set()
    assert final.duration is not None
    return final.duration.total_seconds(), final.status == "succeeded"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=300)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--with-before", action="store_true")
    parser.add_argument("--work-dir", type=Path, default=REPO / "bench" / ".work" / "progress")
    args = parser.parse_args()

    shutil.rmtree(args.work_dir, ignore_errors=True)  # a fresh cluster every run
    args.work_dir.mkdir(parents=True)
    cluster = PgCluster(
        args.work_dir / "pg", password=secrets.token_hex(8), bin_dir=find_pg_bin_dir()
    )
    cluster.start()
    store = Path(tempfile.mkdtemp(prefix="progress-bench-", dir=args.work_dir))
    try:
        url = cluster.create_database(f"bench_{secrets.token_hex(3)}")
        log(f"filling about {args.size_mb} MB ...")
        fill(url, args.size_mb)
        with SlackStandin() as standin:
            env = {"SLACK_BOT_TOKEN": standin.bot_token, "SLACK_API_URL": standin.base_url}
            raw = {
                "state_url": f"sqlite:///{store / 'state.db'}",
                "storage": {"local": {"path": str(store / "backups")}},
                "slack": {"channel": CHANNEL},
                "databases": [{"name": "bench", "url": url}],
            }
            services = build_services(parse_settings(raw, os.environ), env)
            client = services.slack_client
            results: dict[str, list[float]] = {"slack ok": [], "update 429": []}
            calls: dict[str, list[int]] = {k: [] for k in results}
            order = list(results)
            for rep in range(args.reps):
                for variant in order[rep % 2 :] + order[: rep % 2]:
                    standin.reset()
                    lift = None
                    if variant == "update 429":
                        standin.rate_limit("chat.update", times=None, retry_after=RETRY_AFTER)
                        lift = standin
                    seconds, ok = timed_backup(services, client, before=False, lift=lift)
                    assert ok, f"{variant}: the backup failed"
                    results[variant].append(seconds)
                    calls[variant].append(len(standin.calls("chat.update")))
                    log(f"{variant}: {seconds:.2f} s, {calls[variant][-1]} chat.update calls")
            if args.with_before:
                standin.reset()
                standin.rate_limit("chat.update", times=None, retry_after=RETRY_AFTER)
                seconds, ok = timed_backup(services, client, before=True)
                results["before (sync), update 429"] = [seconds]
                calls["before (sync), update 429"] = [len(standin.calls("chat.update"))]
            services.close()
        base = statistics.median(results["slack ok"])
        print(f"\n{args.size_mb} MB database, median of {args.reps}:\n")
        print("| variant | backup duration | x slack ok | chat.update calls |")
        print("|---|---:|---:|---:|")
        for variant, values in results.items():
            median = statistics.median(values)
            print(
                f"| {variant} | {median:.2f} s | {median / base:.2f} | "
                f"{statistics.median(calls[variant]):.0f} |"
            )
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
