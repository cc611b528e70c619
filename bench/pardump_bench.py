"""Benchmark: `backup.jobs` (pg_dump -Fd -j N, tar inside zstd) against the default -Fc
stream, through a TCP proxy that delays every packet (a managed database over a network).

Run by hand from the repository root:

    .venv/bin/python bench/pardump_bench.py --size-mb 200 --delay-ms 5 --rounds 3

It starts a throwaway PostgreSQL cluster under bench/.work/pardump/, builds two databases of
about --size-mb MB each (`wide`: 8 tables of equal size; `tall`: one table), puts
bench/latency_proxy.py in front of it (every chunk forwarded --delay-ms later, each way),
and times the real `backupbot backup now` (dump, store, read back and verify) with
`backup.jobs` 1 (-Fc), 2 and 4, interleaved round-robin (the order rotates every round).
Medians, phases, stored sizes and the machine go to bench/results/pardump.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import psycopg  # noqa: E402
from latency_proxy import LatencyProxy  # noqa: E402

from backupbot.devkit.pgcluster import PgCluster, find_pg_bin_dir  # noqa: E402

MB = 10**6
ROW_BYTES = 250  # about what one generated row takes on disk (heap, no indexes)
SHAPES = {"wide": 8, "tall": 1}  # database -> number of tables sharing its size
GENERATOR = 1


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def build(cluster: PgCluster, name: str, tables: int, size_mb: int) -> None:
    """`name` with `tables` tables of random-ish rows, about `size_mb` MB in all (kept
    between runs while its marker matches)."""
    marker = f"pardump-bench {GENERATOR} {tables} {size_mb}"
    try:
        with psycopg.connect(cluster.url(name)) as conn:
            row = conn.execute("SELECT obj_description('public'::regnamespace)").fetchone()
            if row and row[0] == marker:
                log(f"reusing {name}")
                return
    except psycopg.OperationalError:
        pass
    log(f"building {name}: {tables} table(s), about {size_mb} MB")
    cluster.create_database(name)
    rows = size_mb * MB // ROW_BYTES // tables
    with psycopg.connect(cluster.url(name), autocommit=True) as conn:
        for n in range(1, tables + 1):
            conn.execute(
                f"CREATE TABLE t{n} (id bigint PRIMARY KEY, k text, body text, amount numeric,"
                " at timestamptz)"
            )
            conn.execute(
                f"INSERT INTO t{n} SELECT g, md5(g::text), md5((g * {n})::text) || "
                "repeat(md5((g * 7)::text), 3) || g::text, g * 1.37, "
                "timestamptz '2026-01-01' + g * interval '1 second' "
                "FROM generate_series(1, %s) g",
                (rows,),
            )
        conn.execute(f"COMMENT ON SCHEMA public IS '{marker}'")
        conn.execute("VACUUM ANALYZE")


def via_proxy(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def write_config(work: Path, jobs: int, urls: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """A config backing up both databases (through the proxy) with `backup.jobs: jobs`."""
    state = work / f"state-j{jobs}.db"
    databases = "".join(
        f"  - name: {name}\n    url: ${{BENCH_URL_{name.upper()}}}\n" for name in urls
    )
    config = work / f"backupbot-j{jobs}.yml"
    config.write_text(
        f"state_url: sqlite:///{state}\n"
        f"storage:\n  local:\n    path: {work / f'store-j{jobs}'}\n"
        f"databases:\n{databases}"
        f"backup:\n  jobs: {jobs}\n"
        f"restore:\n  work_dir: {work / 'tmp'}\n"
        "logging:\n  level: WARNING\n  format: text\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SLACK_"))}
    env.update({f"BENCH_URL_{name.upper()}": url for name, url in urls.items()})
    return config, env


def run_backup(
    config: Path, env: dict[str, str], database: str, work: Path, jobs: int
) -> dict[str, Any]:
    """One timed `backupbot backup now`: wall seconds, phases (from the CLI's stage lines
    on stderr: start-up and snapshot, dump (with tar and upload), verify, exit), size."""
    bot = Path(sys.executable).with_name("backupbot")
    marks: dict[str, float] = {}
    lines: list[str] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(bot), "--config", str(config), "backup", "now", database],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=work,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line.rstrip())
        stage = re.match(r"^\[\S+\] (dumping|verifying)\b", line)
        if stage and stage.group(1) not in marks:
            marks[stage.group(1)] = time.perf_counter() - t0
        elif re.match(r"^backup \S+ of \S+ verified: ", line):
            marks["verified"] = time.perf_counter() - t0
    rc = proc.wait()
    seconds = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"backup of {database} (jobs {jobs}) failed:\n" + "\n".join(lines[-30:]))
    store = work / f"store-j{jobs}"
    [artifact] = [p for p in store.rglob("*") if p.name.endswith((".dump.zst", ".tar.zst"))]
    stored = artifact.stat().st_size
    shutil.rmtree(store)  # one artifact on disk at a time
    phases = None
    if {"dumping", "verifying", "verified"} <= marks.keys():
        phases = {
            "start": marks["dumping"],
            "dump": marks["verifying"] - marks["dumping"],
            "verify": marks["verified"] - marks["verifying"],
            "exit": seconds - marks["verified"],
        }
    return {"seconds": seconds, "stored_bytes": stored, "artifact": artifact.name, "phases": phases}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=int, default=200)
    p.add_argument("--delay-ms", type=float, default=5.0)
    p.add_argument("--window-kb", type=int, default=0, help="in flight per connection; 0: no limit")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--jobs", default="1,2,4")
    p.add_argument("--work-dir", default=str(REPO / "bench" / ".work" / "pardump"))
    p.add_argument("--results-dir", default=str(REPO / "bench" / "results"))
    args = p.parse_args(argv)
    work = Path(args.work_dir).absolute()
    work.mkdir(parents=True, exist_ok=True)
    (work / "tmp").mkdir(exist_ok=True)
    secret = work / "pg-password"
    if not secret.exists():
        secret.write_text(secrets.token_urlsafe(18))
        secret.chmod(0o600)
    cluster = PgCluster(work / "pg", password=secret.read_text().strip(), bin_dir=find_pg_bin_dir())
    cluster.start()
    jobs_list = [int(j) for j in args.jobs.split(",")]
    runs: list[dict[str, Any]] = []
    try:
        for name, tables in SHAPES.items():
            build(cluster, name, tables, args.size_mb)
        sizes = {}
        with psycopg.connect(cluster.url()) as conn:
            for name in SHAPES:
                row = conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
                sizes[name] = row[0] if row else 0
        window = args.window_kb * 1024 or None
        proxy = LatencyProxy(
            (cluster.host, cluster.port), delay=args.delay_ms / 1000, window=window
        )
        with proxy:
            urls = {name: via_proxy(cluster.url(name), proxy.ports[0]) for name in SHAPES}
            configs = {j: write_config(work, j, urls) for j in jobs_list}
            for rnd in range(args.rounds):
                for name in SHAPES:
                    order = jobs_list[rnd % len(jobs_list) :] + jobs_list[: rnd % len(jobs_list)]
                    for jobs in order:
                        config, env = configs[jobs]
                        run = run_backup(config, env, name, work, jobs)
                        run.update(round=rnd, database=name, jobs=jobs)
                        runs.append(run)
                        log(f"round {rnd} {name} jobs={jobs}: {run['seconds']:.2f} s")
    finally:
        cluster.stop()
    result = summarize(args, runs, sizes, jobs_list)
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    stem = "pardump" + (f"_window{args.window_kb}k" if args.window_kb else "")
    (results / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = render(result)
    (results / f"{stem}.md").write_text(markdown)
    print(markdown)
    return 0


def summarize(
    args: argparse.Namespace, runs: list[dict[str, Any]], sizes: dict[str, int], jobs: list[int]
) -> dict[str, Any]:
    medians: dict[str, dict[str, Any]] = {}
    for name in SHAPES:
        for j in jobs:
            mine = [r for r in runs if r["database"] == name and r["jobs"] == j]
            medians[f"{name} j{j}"] = {
                "database": name,
                "jobs": j,
                "median_seconds": statistics.median(r["seconds"] for r in mine),
                "runs_seconds": [round(r["seconds"], 3) for r in mine],
                "stored_bytes": mine[-1]["stored_bytes"],
                "median_phases": {
                    k: statistics.median(r["phases"][k] for r in mine if r["phases"])
                    for k in ("start", "dump", "verify", "exit")
                }
                if all(r["phases"] for r in mine)
                else None,
            }
    pg_dump = subprocess.run(
        [str(find_pg_bin_dir() / "pg_dump"), "--version"], capture_output=True, text=True
    )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "python": platform.python_version(),
            "pg_dump": pg_dump.stdout.strip(),
        },
        "settings": {
            "size_mb": args.size_mb,
            "delay_ms": args.delay_ms,
            "window_kb": args.window_kb,
            "rounds": args.rounds,
        },
        "database_bytes": sizes,
        "medians": medians,
        "runs": runs,
    }


def render(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        f"`backupbot backup now` through a {s['delay_ms']:g} ms-per-packet latency proxy"
        f"{window_text(s.get('window_kb') or 0)}, "
        f"median of {s['rounds']} interleaved rounds; {result['date']}, "
        f"{result['machine']['nproc']} CPUs, {result['machine']['pg_dump']}.",
        "",
        "| database | backup.jobs | median s | runs (s) | vs jobs 1 | dump s | verify s "
        "| stored MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    medians = result["medians"]
    for m in medians.values():
        base = medians.get(f"{m['database']} j1", {}).get("median_seconds")
        ratio = m["median_seconds"] / base if base else float("nan")
        db_mb = result["database_bytes"][m["database"]] / MB
        lines.append(
            f"| {m['database']} ({db_mb:.0f} MB) | {m['jobs']} | {m['median_seconds']:.2f} | "
            f"{', '.join(f'{x:.2f}' for x in m['runs_seconds'])} | {ratio:.2f}x | "
            f"{_phase(m, 'dump')} | {_phase(m, 'verify')} | {m['stored_bytes'] / MB:.1f} |"
        )
    return "\n".join(lines) + "\n"


def window_text(window_kb: int) -> str:
    return f" with a {window_kb} KiB window per connection" if window_kb else ""


def _phase(median: dict[str, Any], name: str) -> str:
    phases = median.get("median_phases")
    return f"{phases[name]:.2f}" if phases else "?"


if __name__ == "__main__":
    raise SystemExit(main())
