"""Benchmark: are slash commands answered while four backups run?

Run by hand from the repository root:

    .venv/bin/python bench/interactive_bench.py                    # SQLite state
    .venv/bin/python bench/interactive_bench.py --state both       # + PostgreSQL state

A throwaway PostgreSQL cluster holds four databases of about --size-mb MB each (cloned
from one filled template). The real `backupbot serve` runs from a README-style config
(signed HTTP, the Slack stand-in as Slack), defaults untouched except
`jobs.max_parallel_per_server: 4`: the four databases share one server, and the default
of 1 would run their backups one after another. Each round fires --commands slash
commands at once (a mix of `/backup status`, `status DB`, `log`, `retention`, `help`),
signed, one thread each, and measures per command:

  ack     the HTTP response to the slash command (Slack's limit is 3 s)
  answer  the reply reaching the stand-in at the command's response_url (for `help`,
          which is answered in the ack itself, the ack)

Scenarios, interleaved per repetition:

  baseline  no backup running
  dumping   four `/backup now`s running, all past their queue and dumping (CPU-bound:
            pg_dump, zstd, their server backends on the same cores); checked to be still
            running when the last answer arrives
  locked    four `/backup now`s running, each waiting for an ACCESS EXCLUSIVE table lock
            a held transaction keeps (released after the round), so all four job slots
            are taken the whole round while the CPU is idle

Targets (issue 10): every command acknowledged within 3 s and answered within 5 s.
Writes bench/results/interactive_<state>.json and .md; exit 0 when every command was
acknowledged and answered within the targets, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from deploykit import (
    CHANNEL,
    REQUESTER,
    Deployment,
    clone_databases,
    log,
    machine,
    new_deployment,
    on_loopback,
    percentile,
    start_cluster,
)

from backupbot.devkit.slack_signer import SignedSlackClient
from backupbot.devkit.slack_standin import SlackStandin

REPO = Path(__file__).resolve().parent.parent
ACK_TARGET = 3.0
ANSWER_TARGET = 5.0
DATABASES = ["app1", "app2", "app3", "app4"]
ROUND_TIMEOUT = 60.0  # a command not answered by then counts as unanswered


def command_mix(n: int) -> list[str]:
    """`n` commands, half of them plain `status`, the rest a mix."""
    cycle = ["status", "log", "status", "status app1", "status", "retention", "status", "help"]
    cycle += ["status", "log"]
    return [cycle[i % len(cycle)] for i in range(n)]


def fill(url: str, size_mb: int) -> None:
    """About `size_mb` MB of rows in one table `events` (compresses about 3:1)."""
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


class _Client(SignedSlackClient):
    """A signed client whose slash command carries the response_url given to it."""

    def __init__(self, *args: Any, response_url: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fixed_url = response_url

    def _response_url(self) -> str:
        return self._fixed_url


class AnswerClock:
    """When each response_url post first reached the stand-in (monotonic), observed
    after every request the stand-in handles."""

    def __init__(self, standin: SlackStandin) -> None:
        self.standin = standin
        self.seen: dict[str, tuple[float, dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> AnswerClock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _look(self) -> bool:
        now = time.monotonic()
        for post in self.standin.response_posts():
            if post.id not in self.seen:
                self.seen[post.id] = (now, post.body)
        return self._stop.is_set()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.standin.wait_for(self._look, 0.5)


def fire(dep: Deployment, clock: AnswerClock, texts: list[str]) -> list[dict[str, Any]]:
    """Send every command at once (one thread each); per command its ack and answer."""
    assert dep.serve is not None
    secret = dep.exported["SLACK_SIGNING_SECRET"]
    results: list[dict[str, Any]] = [{} for _ in texts]
    barrier = threading.Barrier(len(texts))

    def one(i: int, text: str) -> None:
        url = dep.standin.new_response_url()
        rid = url.rsplit("/", 1)[-1]
        client = _Client(
            dep.serve.events_url, secret, dep.standin, timeout=ROUND_TIMEOUT, response_url=url
        )
        barrier.wait()
        sent = time.monotonic()
        try:
            resp = client.slash_command(REQUESTER, text, channel_id=CHANNEL)
            acked = time.monotonic()
            results[i] = {
                "text": text,
                "rid": rid,
                "sent": sent,
                "ack": acked - sent,
                "status": resp.status,
                "ack_body": resp.json() if resp.status == 200 else resp.body[:200],
            }
        except Exception as exc:  # recorded as a failed command
            results[i] = {"text": text, "rid": rid, "sent": sent, "ack": None, "error": repr(exc)}

    threads = [threading.Thread(target=one, args=(i, t)) for i, t in enumerate(texts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(ROUND_TIMEOUT + 5)
    deadline = time.monotonic() + ROUND_TIMEOUT
    waiting = [r for r in results if r.get("ack") is not None and r["text"] != "help"]
    while time.monotonic() < deadline and any(r["rid"] not in clock.seen for r in waiting):
        time.sleep(0.05)  # the clock thread records arrivals; this only waits for them
    for r in results:
        if r.get("ack") is None:
            r["answer"] = None
        elif r["text"] == "help":
            r["answer"] = r["ack"]  # answered in the acknowledgement itself
            r["answer_text"] = _text(r["ack_body"])
        elif r["rid"] in clock.seen:
            at, body = clock.seen[r["rid"]]
            r["answer"] = at - r["sent"]
            r["answer_text"] = _text(body)
        else:
            r["answer"] = None
        r.pop("ack_body", None)
    return results


def _text(body: Any) -> str:
    if not isinstance(body, dict):
        return str(body)[:120]
    text = body.get("text") or ""
    if not text:
        for block in body.get("blocks") or []:
            inner = block.get("text")
            if isinstance(inner, dict) and inner.get("text"):
                text = inner["text"]
                break
    return re.sub(r"\s+", " ", str(text))[:120]


def running_backups(dep: Deployment) -> list[dict[str, Any]]:
    return dep.query(
        "SELECT id, database, status, stage, started_at, finished_at, owner FROM backups "
        "WHERE status = 'running'"
    )


def start_backups(
    dep: Deployment, stages: tuple[str, ...], settle: float
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """`/backup now` for every database; once all four are running in one of `stages`
    (or, after `settle` s, every one is there or still queued): (all ids, the ids in
    `stages`, the shared queue's jobs on PostgreSQL state)."""
    client = dep.client()
    since = dep.query("SELECT max(started_at) AS latest_at FROM backups")[0]["latest_at"]
    since = since or datetime(2000, 1, 1, tzinfo=UTC)
    since = since.replace(tzinfo=None) + timedelta(microseconds=1)  # naive UTC, as stored
    for name in DATABASES:
        resp = client.slash_command(REQUESTER, f"now {name}", channel_id=CHANNEL)
        assert resp.status == 200, f"/backup now {name}: HTTP {resp.status} {resp.body}"
    begun = time.monotonic()
    while time.monotonic() < begun + 60:
        rows = dep.query(
            "SELECT id, status, stage FROM backups WHERE started_at >= :since", since=since
        )
        active = [r["id"] for r in rows if r["status"] == "running" and r["stage"] in stages]
        if len(rows) == len(DATABASES) and (
            len(active) == len(rows) or (time.monotonic() > begun + settle and active)
        ):
            jobs = []
            if dep.state_url.startswith("postgresql"):
                jobs = dep.query(
                    "SELECT id, status, lock, args FROM procrastinate_jobs ORDER BY id DESC LIMIT 4"
                )
            if len(active) < len(rows):
                log(f"only {len(active)} of 4 backups in {stages}: {rows}; queue jobs: {jobs}")
            return [r["id"] for r in rows], active, jobs
        time.sleep(0.1)  # polling the state database for the backups' stage
    raise RuntimeError(f"the four backups did not reach {stages}: {running_backups(dep)}")


def wait_finished(dep: Deployment, ids: list[str], timeout: float = 600) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = dep.query(
            "SELECT id, database, status, error, started_at, finished_at FROM backups "
            "WHERE id IN (" + ",".join(f"'{i}'" for i in ids) + ")"
        )
        if all(r["status"] != "running" for r in rows):
            return rows
        time.sleep(0.5)  # polling the state database until the backups end
    raise RuntimeError(f"backups {ids} still running after {timeout:.0f} s")


def hold_locks(urls: dict[str, str]) -> list[psycopg.Connection[Any]]:
    """An open transaction per database holding ACCESS EXCLUSIVE on `events`."""
    conns = []
    for name in DATABASES:
        conn = psycopg.connect(urls[name], application_name="bench-lock-holder")
        conn.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        conns.append(conn)
    return conns


def run_round(
    dep: Deployment,
    clock: AnswerClock,
    urls: dict[str, str],
    scenario: str,
    n: int,
    settle: float,
) -> dict[str, Any]:
    ids: list[str] = []
    active: list[str] = []
    jobs: list[dict[str, Any]] = []
    locks: list[psycopg.Connection[Any]] = []
    try:
        if scenario == "dumping":
            ids, active, jobs = start_backups(dep, ("dumping",), settle)
        elif scenario == "locked":
            locks = hold_locks(urls)
            ids, active, jobs = start_backups(dep, ("snapshot", "dumping"), settle)
        results = fire(dep, clock, command_mix(n))
        last = max((r["sent"] + r["answer"]) for r in results if r.get("answer") is not None)
        still = {r["id"] for r in running_backups(dep)} if ids else set()
        held = all(i in still for i in active)
        # when the last answer arrived, as wall-clock time, for the catalog's times
        last_wall = datetime.now(UTC).timestamp() - (time.monotonic() - last)
    finally:
        for conn in locks:
            conn.rollback()
            conn.close()
    outcome: dict[str, Any] = {"scenario": scenario, "commands": results}
    if ids:
        finished = wait_finished(dep, ids)
        outcome["backups"] = [
            {
                "id": r["id"],
                "database": r["database"],
                "status": r["status"],
                "error": r["error"],
                "seconds": (r["finished_at"] - r["started_at"]).total_seconds(),
                "finished_after_last_answer_s": r["finished_at"].timestamp() - last_wall,
            }
            for r in finished
        ]
        outcome["backups_running_at_last_answer"] = held
        outcome["backups_started_at_fire"] = len(active)
        outcome["queue_jobs_at_fire"] = jobs
    return outcome


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[str, dict[str, Any]] = {}
    for rnd in rounds:
        s = by.setdefault(
            rnd["scenario"],
            {"acks": [], "answers": [], "failed": [], "held": True, "backups": [], "active": []},
        )
        for c in rnd["commands"]:
            if c.get("ack") is None or c.get("status") != 200 or c.get("answer") is None:
                s["failed"].append(c)
            else:
                s["acks"].append(c["ack"])
                s["answers"].append(c["answer"])
        if "backups" in rnd:
            s["held"] = s["held"] and rnd["backups_running_at_last_answer"]
            s["backups"] += [b["status"] for b in rnd["backups"]]
            s["active"].append(rnd["backups_started_at_fire"])
    summary = {}
    for scenario, s in by.items():
        acks, answers = s["acks"], s["answers"]
        summary[scenario] = {
            "commands": len(acks) + len(s["failed"]),
            "unanswered": len(s["failed"]),
            "ack_p50": percentile(acks, 50) if acks else None,
            "ack_p99": percentile(acks, 99) if acks else None,
            "ack_max": max(acks) if acks else None,
            "answer_p50": percentile(answers, 50) if answers else None,
            "answer_p99": percentile(answers, 99) if answers else None,
            "answer_max": max(answers) if answers else None,
            "backups_held_through_rounds": s["held"] if s["backups"] else None,
            "backup_outcomes": s["backups"],
            "backups_started_at_fire": s["active"],
            "met": not s["failed"]
            and bool(acks)
            and max(acks) <= ACK_TARGET
            and max(answers) <= ANSWER_TARGET,
        }
    return summary


def markdown(state: str, args: argparse.Namespace, summary: dict[str, Any], env: dict) -> str:
    lines = [
        f"Interactive benchmark, {env['date']}, {state} state: {env['nproc']} CPUs "
        f"(shared), {args.commands} commands at once x {args.reps} rounds per scenario, "
        f"4 databases of ~{args.size_mb} MB "
        + ("on one server" if args.servers == "one" else "each through its own address")
        + ", `jobs.max_parallel_per_server: 4`; *backups running*: how many of the 4 were "
        "past their queue when the commands were fired, per round.",
        "",
        "| scenario | backups running | commands | ack p50 | ack p99 | answer p50 | answer p99 "
        "| within 3 s / 5 s |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    label = {
        "baseline": "no backup running",
        "dumping": "4 backups dumping",
        "locked": "4 backups waiting on a table lock",
    }
    for scenario, s in summary.items():

        def f(v: float | None) -> str:
            return "—" if v is None else f"{v:.2f} s"

        met = "yes" if s["met"] else f"**no** ({s['unanswered']} unanswered)"
        started = "/".join(str(k) for k in s["backups_started_at_fire"]) or "0"
        lines.append(
            f"| {label.get(scenario, scenario)} | {started} | {s['commands']} | "
            f"{f(s['ack_p50'])} | {f(s['ack_p99'])} | "
            f"{f(s['answer_p50'])} | {f(s['answer_p99'])} | {met} |"
        )
    return "\n".join(lines) + "\n"


def run_state(
    state: str, args: argparse.Namespace, cluster: Any, urls: dict[str, str]
) -> dict[str, Any]:
    with SlackStandin() as standin:
        dep = new_deployment(
            args.work_dir / f"deploy-{state}-{args.servers}",
            standin,
            cluster,
            urls,
            state=state,
            extra={"jobs": {"max_parallel_per_server": 4}},
        )
        try:
            dep.start()
            log(f"{state}: serve running (pid {dep.serve.pid if dep.serve else '?'})")
            rounds = []
            order = list(args.scenarios)
            with AnswerClock(standin) as clock:
                for rep in range(args.reps):
                    k = rep % len(order)
                    for scenario in order[k:] + order[:k]:
                        rnd = run_round(dep, clock, urls, scenario, args.commands, args.settle)
                        answers = [c["answer"] for c in rnd["commands"] if c.get("answer")]
                        acks = [c["ack"] for c in rnd["commands"] if c.get("ack")]
                        log(
                            f"{state} {scenario} #{rep + 1}: ack max {max(acks):.2f} s, "
                            f"answer max {max(answers):.2f} s, "
                            f"{len(answers)}/{len(rnd['commands'])} answered"
                            + (
                                f", backups {[b['status'] for b in rnd['backups']]}"
                                f" held={rnd['backups_running_at_last_answer']}"
                                if "backups" in rnd
                                else ""
                            )
                        )
                        rounds.append(rnd)
                        time.sleep(args.pause)  # let the machine settle between rounds
            crashed = dep.crashed()
            errors = dep.log_lines('"level": "ERROR"') + dep.log_lines("Traceback")
        finally:
            codes = dep.stop() if dep.serve is not None else {}
            dep.kill()
    return {
        "state": state,
        "rounds": rounds,
        "summary": summarize(rounds),
        "crashed": crashed,
        "exit_codes": codes,
        "error_log_lines": errors[:50],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--size-mb", type=int, default=400, help="each of the 4 databases")
    parser.add_argument("--commands", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=["baseline", "dumping", "locked"],
        choices=["baseline", "dumping", "locked"],
    )
    parser.add_argument(
        "--servers",
        choices=["one", "four"],
        default="one",
        help="the 4 databases on one server (host:port), or each through its own loopback "
        "address (127.0.0.1-4), so a per-server limit cannot hold any of them back",
    )
    parser.add_argument("--pause", type=float, default=2.0)
    parser.add_argument(
        "--settle", type=float, default=15.0, help="s to wait for all 4 backups to start"
    )
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/bench-bench/interactive"))
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()

    env = machine()
    four = args.servers == "four"
    cluster = start_cluster(args.work_dir / "pg", max_connections=200, loopbacks=4 if four else 1)
    try:
        log(f"PostgreSQL on {cluster.host}:{cluster.port}; filling ~{args.size_mb} MB ...")
        template = f"tmpl_{secrets.token_hex(3)}"
        fill(cluster.create_database(template), args.size_mb)
        urls = clone_databases(cluster, template, DATABASES)
        if four:  # each database on its own address: four servers to the bot
            urls = {name: on_loopback(url, i + 1) for i, (name, url) in enumerate(urls.items())}
        states = ["sqlite", "postgresql"] if args.state == "both" else [args.state]
        ok = True
        for state in states:
            result = run_state(state, args, cluster, urls)
            result.update(machine=env, size_mb=args.size_mb, commands=args.commands)
            result["config_note"] = "defaults, except jobs.max_parallel_per_server: 4"
            result["servers"] = args.servers
            args.results_dir.mkdir(parents=True, exist_ok=True)
            suffix = "_4servers" if four else ""
            base = args.results_dir / f"interactive_{state}{suffix}"
            base.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str))
            md = markdown(state, args, result["summary"], env)
            base.with_suffix(".md").write_text(md)
            print(md)
            if result["crashed"] or result["error_log_lines"]:
                print(f"processes that exited: {result['crashed']}")
                print("\n".join(result["error_log_lines"][:20]))
            ok = ok and all(s["met"] for s in result["summary"].values())
        return 0 if ok else 1
    finally:
        cluster.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
