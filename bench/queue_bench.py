"""Benchmark: 100 databases due at the same second, run by 1 or 3 workers.

Run by hand from the repository root:

    .venv/bin/python bench/queue_bench.py                   # the README's figures
    .venv/bin/python bench/queue_bench.py --databases 10 --variants 3w-shared   # smoke

A throwaway PostgreSQL cluster holds --databases small databases (cloned from one
template of a few hundred kB) and, per variant, a fresh PostgreSQL state database. Every
database gets the same 6-field cron, `S M H * * *` for one second about --lead seconds
after the variant starts, so each is due exactly once during the run. The real processes
run from a README-style config: `backupbot serve` (its scheduler leads and only enqueues;
its in-process worker runs jobs) and, for 3 workers, two `backupbot worker` processes.

Variants (--variants, in this order by default):

  1w-shared   serve alone, jobs.max_parallel_per_server: 12
  3w-shared   serve + 2 workers, jobs.max_parallel_per_server: 12
  1w-default  serve alone, defaults (max_parallel_per_server 1)
  3w-default  serve + 2 workers, defaults: still one backup at a time fleet-wide, since
              all databases are on one server
  1w-remote   serve alone, defaults, the databases spread over --servers "servers"
              (ports of a proxy adding --delay-ms each way: managed databases over a
              network, where a backup waits on round trips rather than local CPUs)
  3w-remote   serve + 2 workers, the same

Checked from the state database after each variant: the `scheduled_runs` ledger has
exactly one row per database for that second (status done, naming its backup), the
`backups` table exactly one succeeded backup per database and nothing else, no queue job
left; the log has no ERROR or traceback and no process died. Measured: the makespan
(first `started_at`, which is when the leader queued it, to last `finished_at`), the
dumps in flight (sampled every 0.1 s from the catalog and from `pg_stat_activity`), and
which processes ran the backups (`owner`). Writes bench/results/queue.json and queue.md;
exit 0 when every variant ran every firing exactly once, 1 otherwise.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from deploykit import (
    Deployment,
    clone_databases,
    log,
    machine,
    new_deployment,
    start_cluster,
)
from latency_proxy import LatencyProxy

from backupbot.devkit.slack_standin import SlackStandin

REPO = Path(__file__).resolve().parent.parent
# name -> (extra workers, per_server, through the latency proxies)
VARIANTS: dict[str, tuple[int, int | None, bool]] = {
    "1w-shared": (0, 12, False),
    "3w-shared": (2, 12, False),
    "1w-default": (0, None, False),
    "3w-default": (2, None, False),
    "1w-remote": (0, None, True),
    "3w-remote": (2, None, True),
}


def fill_template(url: str) -> None:
    """A small application database: two tables with keys and an index, ~300 kB."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE customers (id int PRIMARY KEY, email text UNIQUE, created timestamptz)"
        )
        conn.execute(
            "CREATE TABLE orders (id int PRIMARY KEY, customer int REFERENCES customers, "
            "amount numeric(10,2), note text)"
        )
        conn.execute(
            "INSERT INTO customers SELECT g, 'user' || g || '@example.com', "
            "now() - g * interval '1 hour' FROM generate_series(1, 1000) g"
        )
        conn.execute(
            "INSERT INTO orders SELECT g, 1 + g % 1000, (g % 997) * 1.25, md5(g::text) "
            "FROM generate_series(1, 3000) g"
        )
        conn.execute("CREATE INDEX ON orders (customer)")
        conn.execute("VACUUM ANALYZE")


class Sampler:
    """Every `interval` s: backups past their queue (catalog) and pg_dump sessions on the
    server (`pg_stat_activity`); also when each backup was first seen past its queue."""

    def __init__(self, dep: Deployment, admin_url: str, interval: float = 0.1) -> None:
        self.dep = dep
        self.admin_url = admin_url
        self.interval = interval
        self.max_in_flight = 0
        self.max_dumps = 0
        self.first_taken: dict[str, float] = {}  # backup id -> wall-clock time
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            while not self._stop.wait(self.interval):
                try:
                    self._sample(conn)
                except Exception as exc:  # the bench goes on; the sample is lost
                    log(f"sample failed: {exc!r}")

    def _sample(self, conn: psycopg.Connection[Any]) -> None:
        now = time.time()
        rows = self.dep.query(
            "SELECT id FROM backups WHERE status = 'running' AND stage <> 'queued'"
        )
        for r in rows:
            self.first_taken.setdefault(r["id"], now)
        dumps = conn.execute(
            "SELECT count(DISTINCT datname) FROM pg_stat_activity "
            "WHERE application_name LIKE '%pg_dump%' AND backend_type = 'client backend'"
        ).fetchone()
        self.max_in_flight = max(self.max_in_flight, len(rows))
        self.max_dumps = max(self.max_dumps, int(dumps[0]) if dumps else 0)
        self.samples += 1


def due_second(lead: float) -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=lead)).replace(microsecond=0)


def owner_names(dep: Deployment) -> dict[int, str]:
    """pid -> process name in this deployment."""
    names = {}
    if dep.serve is not None:
        names[dep.serve.pid] = "serve"
    for i, w in enumerate(dep.workers):
        names[w.pid] = f"worker-{i + 1}"
    return names


def wait_done(dep: Deployment, expected: int, due: datetime, timeout: float) -> bool:
    """Until `expected` backups have ended (True), or, from 60 s after `due`, nothing is
    running or queued any more although fewer ended, a process died, or `timeout` (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = dep.query(
            "SELECT count(*) FILTER (WHERE status <> 'running') AS ended, "
            "count(*) FILTER (WHERE status = 'running') AS running FROM backups"
        )[0]
        if row["ended"] >= expected:
            return True
        if dep.crashed():
            return False
        if datetime.now(UTC) > due + timedelta(seconds=60) and not row["running"]:
            queued = dep.query(
                "SELECT count(*) AS n FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
            )[0]
            if not queued["n"]:
                return False
        time.sleep(0.5)  # polling the state database until the fleet is done
    return False


def through(urls: dict[str, str], cluster: Any, ports: list[int]) -> dict[str, str]:
    """Each URL through one of the proxy's ports, round robin: a server per port."""
    direct = f"@{cluster.host}:{cluster.port}/"
    return {
        name: url.replace(direct, f"@127.0.0.1:{ports[i % len(ports)]}/", 1)
        for i, (name, url) in enumerate(urls.items())
    }


def run_variant(
    name: str, args: argparse.Namespace, cluster: Any, urls: dict[str, str], ports: list[int]
) -> dict[str, Any]:
    extra_workers, per_server, remote = VARIANTS[name]
    if remote:
        urls = through(urls, cluster, ports)
    n = len(urls)
    with SlackStandin() as standin:
        due = due_second(args.lead)
        cron = f"{due.second} {due.minute} {due.hour} * * *"
        dep = new_deployment(
            args.work_dir / f"deploy-{name}",
            standin,
            cluster,
            urls,
            state="postgresql",
            extra={"jobs": {"max_parallel_per_server": per_server}} if per_server else None,
        )
        for entry in dep.config["databases"]:
            entry["schedule"] = cron  # timezone: the default, UTC
        result: dict[str, Any] = {
            "variant": name,
            "workers": 1 + extra_workers,
            "max_parallel_jobs": 4,
            "max_parallel_per_server": per_server or 1,
            "network": f"{len(ports)} servers, +{2 * args.delay_ms:g} ms a round trip"
            if remote
            else "local",
            "databases": n,
            "cron": cron,
            "due": due.isoformat(),
        }
        try:
            dep.start(workers=extra_workers)
            ready = datetime.now(UTC)
            result["ready_before_due_s"] = (due - ready).total_seconds()
            if ready >= due:
                log(f"{name}: the processes were ready only {ready - due} after the firing")
            log(f"{name}: {1 + extra_workers} worker(s) ready; due at {due:%H:%M:%S} ({cron})")
            with Sampler(dep, cluster.url()) as sampler:
                finished = wait_done(dep, n, due, args.timeout + (due - ready).total_seconds())
                time.sleep(1.0)  # one more sample after the last backup
            result.update(
                max_backups_in_flight=sampler.max_in_flight,
                max_pg_dump_databases=sampler.max_dumps,
                samples=sampler.samples,
            )
            result["all_finished"] = finished
            result.update(verify(dep, urls, due, sampler.first_taken))
            result.update(job_times(dep.workdir))
            result["slack_channel_messages"] = len(standin.messages())
            result["crashed"] = dep.crashed()
            result["error_log_lines"] = (
                dep.log_lines('"level": "ERROR"') + dep.log_lines("Traceback")
            )[:50]
            result["warning_log_lines"] = dep.log_lines('"level": "WARNING"')[:50]
        finally:
            names = owner_names(dep) if dep.serve is not None else {}
            result["exit_codes"] = dep.stop() if dep.serve is not None else {}
            dep.kill()
        result["owners"] = {
            names.get(int(owner.split(":")[1]), owner) if owner.count(":") >= 2 else owner: count
            for owner, count in result.pop("owner_counts", {}).items()
        }
    result["exactly_once"] = (
        result["all_finished"]
        and result["ledger_ok"] == n
        and result["backups_succeeded"] == n
        and not result["duplicated"]
        and not result["missed"]
        and not result["crashed"]
        and not result["queue_jobs_left"]
    )
    return result


def job_times(workdir: Path) -> dict[str, Any]:
    """From every process's log (procrastinate's `start_job` and `job_success` lines): how
    long each job ran, and the gap from one job's end to the next job's start."""
    starts: dict[int, datetime] = {}
    ends: dict[int, datetime] = {}
    for path in workdir.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            action = entry.get("action") if isinstance(entry, dict) else None
            if action in ("start_job", "job_success"):
                at = datetime.fromisoformat(entry["time"])
                (starts if action == "start_job" else ends)[entry["job"]["id"]] = at
    ran = sorted((ends[i] - starts[i]).total_seconds() for i in starts if i in ends)
    order = sorted((i for i in starts if i in ends), key=lambda i: starts[i])
    gaps = sorted((starts[b] - ends[a]).total_seconds() for a, b in itertools.pairwise(order))
    return {
        "jobs_in_logs": len(ran),
        "job_seconds_median": ran[len(ran) // 2] if ran else None,
        "job_seconds_total": sum(ran),
        "gap_end_to_next_start_median_s": gaps[len(gaps) // 2] if gaps else None,
    }


def verify(
    dep: Deployment, urls: dict[str, str], due: datetime, first_taken: dict[str, float]
) -> dict[str, Any]:
    ledger = dep.query(
        "SELECT job, scheduled_for, status, claimed_by, result FROM scheduled_runs "
        "WHERE job LIKE 'backup:%'"
    )
    fired = [r for r in ledger if r["scheduled_for"] == due]
    other = Counter(r["status"] for r in ledger if r["scheduled_for"] != due)
    backups = dep.query(
        "SELECT id, database, status, error, actor, started_at, finished_at, owner "
        "FROM backups ORDER BY started_at"
    )
    per_db = Counter(b["database"] for b in backups)
    per_job = Counter(r["job"] for r in fired)
    ids = {b["id"] for b in backups}

    def backup_id(run: dict[str, Any]) -> str | None:
        res = run["result"]
        if isinstance(res, str):
            res = json.loads(res)
        return res.get("backup_id") if isinstance(res, dict) else None

    ledger_ok = sum(
        1 for r in fired if r["status"] == "done" and per_job[r["job"]] == 1 and backup_id(r) in ids
    )
    succeeded = [b for b in backups if b["status"] == "succeeded"]
    failed = [b for b in backups if b["status"] != "succeeded"]
    starts = [b["started_at"] for b in backups]
    ends = [b["finished_at"] for b in backups if b["finished_at"] is not None]
    durations = sorted((b["finished_at"] - b["started_at"]).total_seconds() for b in succeeded)
    taken = sorted(first_taken.values())
    queue_left = dep.query("SELECT status, count(*) AS n FROM procrastinate_jobs GROUP BY status")
    incidents = dep.query("SELECT action, count(*) AS n FROM incidents GROUP BY action")
    makespan = (max(ends) - min(starts)).total_seconds() if ends else None
    return {
        "ledger_rows_for_due": len(fired),
        "ledger_ok": ledger_ok,
        "ledger_other_rows": dict(other),  # the `registered` row each job gets at start-up
        "ledger_claimed_by": dict(Counter(r["claimed_by"] for r in fired)),
        "backups_total": len(backups),
        "backups_succeeded": len(succeeded),
        "backups_not_succeeded": [
            {"database": b["database"], "status": b["status"], "error": b["error"]} for b in failed
        ],
        "duplicated": sorted(d for d, c in per_db.items() if c > 1)
        + sorted(j for j, c in per_job.items() if c > 1),
        "missed": sorted(set(urls) - set(per_db)),
        "actors": dict(Counter(b["actor"] for b in backups)),
        "owner_counts": dict(Counter(b["owner"] or "none" for b in backups)),
        "makespan_s": makespan,
        "first_started_after_due_s": (min(starts) - due).total_seconds() if starts else None,
        "last_finished_after_due_s": (max(ends) - due).total_seconds() if ends else None,
        "first_taken_to_last_finished_s": (max(ends).timestamp() - taken[0])
        if ends and taken
        else None,
        "backup_seconds_median": durations[len(durations) // 2] if durations else None,
        "queue_jobs_left": {
            r["status"]: r["n"] for r in queue_left if r["status"] in ("todo", "doing", "failed")
        },
        "queue_jobs_by_status": {r["status"]: r["n"] for r in queue_left},
        "incidents": {r["action"]: r["n"] for r in incidents},
    }


def markdown(results: list[dict[str, Any]], env: dict[str, Any], n: int) -> str:
    lines = [
        f"Queue benchmark, {env['date']}: {env['nproc']} CPUs (shared), {n} small databases "
        "on one PostgreSQL cluster, all due at the same second, PostgreSQL state, "
        "`max_parallel_jobs` 4 per worker.",
        "",
        "| workers | per server | network | ran exactly once | makespan | x 1 worker | "
        "max dumps at once | who ran them |",
        "|---|---:|---|---|---:|---:|---:|---|",
    ]
    base: dict[tuple[int, str], float] = {}
    for r in results:
        if r["workers"] == 1 and r["makespan_s"]:
            base[(r["max_parallel_per_server"], r["network"])] = r["makespan_s"]
    for r in results:
        once = (
            "yes"
            if r["exactly_once"]
            else f"**no** ({r['backups_succeeded']}/{n} succeeded, "
            f"dup {r['duplicated']}, missed {len(r['missed'])})"
        )
        ref = base.get((r["max_parallel_per_server"], r["network"]))
        ratio = f"{r['makespan_s'] / ref:.2f}" if ref and r["makespan_s"] else "—"
        owners = ", ".join(f"{k} {v}" for k, v in sorted(r["owners"].items()))
        span = f"{r['makespan_s']:.1f} s" if r["makespan_s"] else "—"
        lines.append(
            f"| {r['workers']} | {r['max_parallel_per_server']} | {r['network']} | {once} | "
            f"{span} | {ratio} | "
            f"{r['max_pg_dump_databases']} | {owners} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", type=int, default=100)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--lead", type=float, default=40.0, help="s from start to the firing")
    parser.add_argument("--timeout", type=float, default=900.0, help="s per variant")
    parser.add_argument("--servers", type=int, default=10, help="proxy ports (remote)")
    parser.add_argument("--delay-ms", type=float, default=10.0, help="one way (remote)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/bench-bench/queue"))
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()

    env = machine()
    cluster = start_cluster(args.work_dir / "pg", max_connections=300)
    try:
        log(f"PostgreSQL on {cluster.host}:{cluster.port}; {args.databases} databases ...")
        template = f"tmpl_{secrets.token_hex(3)}"
        fill_template(cluster.create_database(template))
        names = [f"q{i:03d}" for i in range(1, args.databases + 1)]
        urls = clone_databases(cluster, template, names)
        results = []
        proxy = LatencyProxy(
            (cluster.host, int(cluster.port)), delay=args.delay_ms / 1000, listeners=args.servers
        )
        with proxy:
            for name in args.variants:
                r = run_variant(name, args, cluster, urls, proxy.ports)
                results.append(r)
                log(
                    f"{name}: exactly once {r['exactly_once']}, "
                    f"{r['backups_succeeded']}/{args.databases} succeeded, "
                    f"makespan {r['makespan_s']} s, max dumps at once "
                    f"{r['max_pg_dump_databases']}, owners {r['owners']}"
                )
                if r["error_log_lines"] or r["crashed"]:
                    errors = "\n".join(r["error_log_lines"][:10])
                    log(f"errors: {errors} crashed {r['crashed']}")
        md = markdown(results, env, args.databases)
        args.results_dir.mkdir(parents=True, exist_ok=True)
        (args.results_dir / "queue.json").write_text(
            json.dumps({"machine": env, "variants": results}, indent=1, default=str)
        )
        (args.results_dir / "queue.md").write_text(md)
        print(md)
        return 0 if all(r["exactly_once"] for r in results) else 1
    finally:
        cluster.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
