"""Benchmark: backupbot's restore against plain pg_restore on the same archive.

Run by hand from the repository root:

    .venv/bin/python bench/restore_bench.py --size-gb 1

It reuses backup_bench.py's throwaway PostgreSQL cluster under bench/.work/ and its benchmark
database (the same name and marker, so a database built by either benchmark is reused), takes
one backupbot backup of it (local store), unpacks that artifact once to a plain pg_dump archive,
then times, interleaved round-robin, each into a freshly dropped target database:

  pg_restore -j N     CREATE DATABASE + pg_restore --exit-on-error --no-owner --no-acl -j N
                      from the already-unpacked archive
  backupbot restore   backupbot restore run DB ID --into TARGET --break-glass (restore.jobs N):
                      download, SHA-256 check, unpack, CREATE DATABASE, the same pg_restore,
                      row counts of every table against the manifest

and prints the median wall time, the ratio backupbot / pg_restore (target <= 1.05), the peak
RSS of the backupbot process, backupbot's own stage timings (a stage its restore record lists
as `overlapped`, such as CREATE DATABASE during the download, is shown but not added up) and
the 1- and 5-minute load average around each run (the machine may be shared). Results also go
to bench/results/restore_latest.{md,json}. See bench/README.md.

`--profile DIR` adds one untimed backupbot restore under `python -X importtime -m cProfile`
after the timed rounds: DIR/restore.prof (pstats), DIR/importtime.txt, and the top of both
printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backup_bench as bb  # puts the repository on sys.path too
import psutil
import psycopg
from psycopg import sql as pgsql

# ------------------------------------------------------------------------------ targets
TARGET_TIME_RATIO = 1.05  # backupbot restore wall time <= 1.05 x plain pg_restore, same -j

MB = bb.MB
TARGET_DB = "bench_restore_target"
DB_URL_VAR = "BENCH_DB_URL_RESTORE"
REASON = "restore benchmark"
BOT_STAGES = ("download", "create", "restore", "verify")  # backupbot's own timings

# Fallback while `backupbot restore run` does not exist yet: the same code path
# (RestoreService.break_glass) in a child process, so wall time and RSS are measured alike.
API_RESTORE = """
import json, sys
from backupbot.bot.composition import build_services, load
config, database, ref, into, reason = sys.argv[1:6]
services = build_services(load(config), {})
try:
    r = services.restores.break_glass(database, ref, actor="bench", reason=reason, into=into)
finally:
    services.close()
print(json.dumps({"id": r.id, "status": r.status, "error": r.error, "result": r.result}))
sys.exit(0 if r.status == "succeeded" else 1)
"""

log = bb.log


@dataclass
class RestoreRun:
    variant: str
    round: int
    seconds: float
    ok: bool
    peak_rss_bytes: int | None = None
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage
    jobs: int | None = None
    restore_id: str | None = None
    error: str | None = None
    overlapped: list[str] = field(default_factory=list)  # stages timed inside another
    load: tuple[float, float] | None = None  # 1- and 5-minute load average before the run


@dataclass
class RestoreVariant:
    key: str
    label: str
    command: str
    fn: Callable[[int], RestoreRun]


class RestoreBench(bb.Bench):
    """backup_bench's Bench (cluster, configs, child tracking), plus a restore config, one
    backup, the unpacked baseline archive and the two restore variants."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.dbname: str = args.database
        self.target: str = args.target
        self.jobs: int = args.jobs
        self.via = "cli"
        self.archive = self.work / "restore-baseline" / "archive.dump"
        self.store_dir = self.work / "store-restore"
        self.tmp_dir = self.work / "restore-tmp"
        self.backup: dict[str, Any] = {}
        self.services: Any = None
        self.seen_restores: set[str] = set()

    # ---------------------------------------------------------------- setup
    def write_configs(self) -> None:
        """backup_bench's configs give the backupbot command and its environment; the restore
        benchmark then uses a config of its own (state, store and restore settings)."""
        assert self.cluster is not None
        super().write_configs()
        state = self.work / "state-restore.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{state}{suffix}").unlink(missing_ok=True)
        for d in (self.store_dir, self.tmp_dir, self.archive.parent):
            shutil.rmtree(d, ignore_errors=True)
        self.tmp_dir.mkdir(parents=True)
        self.archive.parent.mkdir(parents=True)
        path = self.work / "backupbot-restore.yml"
        path.write_text(
            f"state_url: sqlite:///{state}\n"
            f"storage:\n  local:\n    path: {self.store_dir}\n"
            f"databases:\n  - name: {self.dbname}\n    url: ${{{DB_URL_VAR}}}\n"
            "    schedule: '0 3 * * *'\n"
            f"backup:\n  compression_level: {self.args.level}\n"
            f"restore:\n  jobs: {self.jobs}\n  work_dir: {self.tmp_dir}\n"
            "logging:\n  level: WARNING\n  format: text\n",
            encoding="utf-8",
        )
        self.configs = {"restore": path}
        self.bot_env[DB_URL_VAR] = self.cluster.url(self.dbname)

    def choose_interface(self) -> None:
        """The CLI (`restore run`) when it exists, else the Python API in a child process."""
        if self.args.via != "auto":
            self.via = self.args.via
        else:
            probe = self.bot("restore", "restore", "run", "--help", timeout=60)
            self.via = "cli" if probe.returncode == 0 else "api"
        if self.via == "api":
            log(
                "`backupbot restore run` is not available: timing RestoreService.break_glass "
                "in a child Python process instead (same code path)"
            )

    def state(self) -> Any:
        """backupbot's services on the benchmark's state database, to read restore records
        (only between timed runs)."""
        if self.services is None:
            from backupbot.bot.composition import build_services, load

            self.services = build_services(load(str(self.configs["restore"]), self.bot_env), {})
        return self.services

    def take_backup(self) -> None:
        log(f"backupbot backup now {self.dbname} (untimed, local store)")
        t0 = time.perf_counter()
        result = self.bot("restore", "backup", "now", self.dbname, timeout=3600)
        backup_id = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        if result.returncode != 0 or not backup_id:
            raise SystemExit(
                f"backupbot backup failed (exit {result.returncode}):\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        status = self.bot("restore", "status", self.dbname, "--json")
        try:
            last = json.loads(status.stdout)[0]["last_success"]
        except (ValueError, LookupError, TypeError):
            raise SystemExit(f"status --json unreadable: {status.stdout}{status.stderr}") from None
        if not last or last.get("id") != backup_id:
            raise SystemExit(f"status --json does not show backup {backup_id} as the last one")
        self.backup = last
        log(
            f"  backup {backup_id}: {last['stored_size'] / MB:.1f} MB stored, "
            f"{last['raw_size'] / MB:.1f} MB archive, {time.perf_counter() - t0:.1f} s"
        )

    def unpack_baseline(self) -> None:
        """The plain archive for pg_restore: the stored artifact, decompressed once."""
        src = Path(str(self.backup["location"]))
        t0 = time.perf_counter()
        if self.zstd:
            subprocess.run(
                [self.zstd, "-d", "-q", "-f", "-o", str(self.archive), str(src)],
                check=True,
                timeout=3600,
            )
        else:
            import zstandard

            with src.open("rb") as fin, self.archive.open("wb") as fout:
                zstandard.ZstdDecompressor().copy_stream(fin, fout)
        size = self.archive.stat().st_size
        if size != self.backup["raw_size"]:
            raise SystemExit(
                f"unpacked archive has {size} bytes, the catalog says {self.backup['raw_size']}"
            )
        log(f"  unpacked to {self.archive} ({size / MB:.1f} MB, {time.perf_counter() - t0:.1f} s)")

    def admin(self) -> psycopg.Connection[Any]:
        assert self.cluster is not None
        return psycopg.connect(self.cluster.url("postgres"), autocommit=True, connect_timeout=10)

    def reset_target(self) -> float:
        """Drop the target (untimed), checkpoint and sync, so the previous run's dirty
        buffers, WAL and the kernel's writeback of its files do not land in the next run's
        time. Returns the seconds it took."""
        t0 = time.perf_counter()
        with self.admin() as conn:
            conn.execute(
                pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    pgsql.Identifier(self.target)
                )
            )
            conn.execute("CHECKPOINT")
        os.sync()
        return time.perf_counter() - t0

    # ---------------------------------------------------------------- variants
    def pg_restore_args(self) -> list[str]:
        assert self.pg_bin is not None
        return [
            str(self.pg_bin / "pg_restore"),
            "--exit-on-error",
            "--no-owner",
            "--no-acl",
            "--no-password",
            f"--jobs={self.jobs}",
            f"--dbname={self.target}",
            str(self.archive),
        ]

    def run_pg_restore(self, rnd: int) -> RestoreRun:
        """CREATE DATABASE (as backupbot does it) + pg_restore, both timed."""
        assert self.cluster is not None
        err = self.logs / "restore-pg_restore.stderr"
        stages: dict[str, float] = {}
        with err.open("wb") as errf:
            t0 = time.perf_counter()
            with self.admin() as conn:
                conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(self.target)))
            t1 = time.perf_counter()
            stages["create"] = t1 - t0
            proc = subprocess.Popen(
                self.pg_restore_args(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errf,
                env=bb.pg_env(self.cluster, self.target),
            )
            with bb.tracked(proc):
                error = self._finish(proc, "pg_restore", err)
            seconds = time.perf_counter() - t0
            stages["restore"] = seconds - stages["create"]
        return RestoreRun(
            "pg_restore", rnd, seconds, error is None, stages=stages, jobs=self.jobs, error=error
        )

    def bot_restore_cmd(self) -> list[str]:
        config = str(self.configs["restore"])
        backup_id = str(self.backup["id"])
        if self.via == "cli":
            return [
                *self.bot_cmd,
                "--config",
                config,
                "restore",
                "run",
                self.dbname,
                backup_id,
                "--into",
                self.target,
                "--break-glass",
                "--reason",
                REASON,
            ]
        return [
            sys.executable,
            "-c",
            API_RESTORE,
            config,
            self.dbname,
            backup_id,
            self.target,
            REASON,
        ]

    def run_bot_restore(self, rnd: int) -> RestoreRun:
        out_path = self.logs / "restore-backupbot.stdout"
        err_path = self.logs / "restore-backupbot.stderr"
        with out_path.open("wb") as outf, err_path.open("wb") as errf:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                self.bot_restore_cmd(),
                stdin=subprocess.DEVNULL,
                stdout=outf,
                stderr=errf,
                env=self.bot_env,
                cwd=self.work,
            )
            with bb.tracked(proc):
                sampler = bb.RssSampler(proc.pid)
                sampler.start()
                rc = proc.wait()
                seconds = time.perf_counter() - t0
                peak = sampler.stop()
        run = RestoreRun("backupbot", rnd, seconds, rc == 0, peak_rss_bytes=peak or None)
        if sampler.samples == 0:
            run.peak_rss_bytes = None
        self.collect_restore(run)
        if rc != 0:
            run.ok = False
            tail = (out_path.read_text(errors="replace") + err_path.read_text(errors="replace"))[
                -2000:
            ]
            run.error = f"exit {rc}: " + (run.error or "") + "\n" + tail
        return run

    def collect_restore(self, run: RestoreRun) -> None:
        """The restore record this run created (untimed): status, stage timings, jobs."""
        services = self.state()
        restore_id = None
        for incident in services.incidents.recent(50, database=self.dbname):
            rid = incident.details.get("restore_id")
            if incident.action.startswith("restore.") and rid and rid not in self.seen_restores:
                restore_id = rid
                break
        if restore_id is None:
            run.ok = False
            run.error = "no new restore in backupbot's incident log"
            return
        self.seen_restores.add(restore_id)
        record = services.restores.get(restore_id)
        run.restore_id = restore_id
        result = record.result or {}
        timings = result.get("timings") or {}
        run.stages = {k: float(v) for k, v in timings.items()}
        run.overlapped = list(result.get("overlapped") or [])
        counted = sum(v for k, v in run.stages.items() if k not in run.overlapped)
        run.stages["other"] = max(0.0, run.seconds - counted)
        run.jobs = result.get("jobs")
        if record.status != "succeeded":
            run.ok = False
            run.error = f"restore {restore_id} {record.status}: {record.error}"
        elif record.target_db != self.target or record.backup_id != self.backup["id"]:
            run.ok = False
            run.error = (
                f"restore {restore_id} restored {record.backup_id} into {record.target_db}, "
                f"expected {self.backup['id']} into {self.target}"
            )

    # ---------------------------------------------------------------- orchestration
    def restore_variants(self) -> list[RestoreVariant]:
        bot_cmd = (
            f"backupbot restore run {self.dbname} ID --into {self.target} --break-glass"
            if self.via == "cli"
            else f"RestoreService.break_glass({self.dbname!r}, ID, into={self.target!r})"
        )
        return [
            RestoreVariant(
                "pg_restore",
                f"pg_restore -j {self.jobs}",
                "CREATE DATABASE; pg_restore --exit-on-error --no-owner --no-acl "
                f"-j {self.jobs} -d {self.target} archive.dump",
                self.run_pg_restore,
            ),
            RestoreVariant(
                "backupbot",
                "backupbot restore",
                f"{bot_cmd} (restore.jobs {self.jobs}, local store)",
                self.run_bot_restore,
            ),
        ]

    def measure_restores(self, variants: list[RestoreVariant]) -> list[RestoreRun]:
        runs: list[RestoreRun] = []
        if self.args.warmup:
            # The first restore after the server starts also creates (zero-fills) the WAL
            # segments that later runs recycle; keep that out of the comparison.
            self.reset_target()
            log("warm-up (untimed): pg_restore into the target")
            warm = self.run_pg_restore(-1)
            if not warm.ok:
                raise SystemExit(f"warm-up pg_restore failed: {warm.error}")
            log(f"  warm-up: {warm.seconds:.2f} s")
        for rnd in range(self.args.reps):
            # round-robin, rotated each round so no variant always runs first or last
            order = variants[rnd % len(variants) :] + variants[: rnd % len(variants)]
            for variant in order:
                self.reset_target()
                load = os.getloadavg()[:2]
                log(f"round {rnd + 1}/{self.args.reps}: {variant.label} (load {load[0]:.2f}) ...")
                run = variant.fn(rnd)
                run.load = (round(load[0], 2), round(load[1], 2))
                runs.append(run)
                rss = f", peak RSS {run.peak_rss_bytes / MB:.0f} MB" if run.peak_rss_bytes else ""
                stages = ", ".join(f"{k} {v:.2f}" for k, v in run.stages.items())
                status = "ok" if run.ok else f"FAILED: {run.error}"
                log(f"  {variant.label}: {run.seconds:.2f} s ({stages}){rss} {status}")
                time.sleep(self.args.pause)
        return runs

    def profile_restore(self, out: Path) -> None:
        """One untimed backupbot restore (the CLI) under `-X importtime` and cProfile:
        out/restore.prof, out/profile.txt (top functions by cumulative time) and
        out/importtime.txt; logs the import total and the restore record's stages."""
        if self.via != "cli":
            log("--profile needs the CLI (`restore run`); skipped")
            return
        out.mkdir(parents=True, exist_ok=True)
        prof = out / "restore.prof"
        cli = ["-m", "backupbot.bot.cli.main", *self.bot_restore_cmd()[len(self.bot_cmd) :]]
        cmd = [sys.executable, "-X", "importtime", "-m", "cProfile", "-o", str(prof), *cli]
        self.reset_target()
        log("profile (untimed): backupbot restore under -X importtime and cProfile")
        t0 = time.perf_counter()
        proc = subprocess.run(
            cmd, env=self.bot_env, cwd=self.work, capture_output=True, text=True, timeout=3600
        )
        run = RestoreRun("backupbot", -1, time.perf_counter() - t0, proc.returncode == 0)
        self.collect_restore(run)
        (out / "importtime.txt").write_text(proc.stderr, encoding="utf-8")
        top = 0
        for line in proc.stderr.splitlines():  # "import time: self | cumulative | name"
            parts = line.split("|")
            if line.startswith("import time:") and len(parts) == 3 and parts[2][1:2] != " ":
                with contextlib.suppress(ValueError):
                    top += int(parts[1])
        import io
        import pstats

        buf = io.StringIO()
        if prof.exists():
            pstats.Stats(str(prof), stream=buf).sort_stats("cumulative").print_stats(40)
        (out / "profile.txt").write_text(buf.getvalue(), encoding="utf-8")
        stages = ", ".join(f"{k} {v:.2f}" for k, v in run.stages.items())
        log(
            f"  profiled run: {run.seconds:.2f} s ({stages}); imports {top / 1e6:.2f} s "
            f"(-X importtime, inflates them); {out}/profile.txt, importtime.txt "
            + ("ok" if run.ok else f"FAILED: {run.error}")
        )

    def cleanup(self) -> None:
        """Drop the target and remove the archives (keeps bench/.work small)."""
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.reset_target()
        self.archive.unlink(missing_ok=True)
        for d in (self.store_dir, self.tmp_dir):
            shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------------------ reporting


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(variants: list[RestoreVariant], runs: list[RestoreRun]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for v in variants:
        mine = [r for r in runs if r.variant == v.key]
        good = [r for r in mine if r.ok]
        times = [r.seconds for r in good]
        rss = [r.peak_rss_bytes for r in good if r.peak_rss_bytes is not None]
        stages: dict[str, float] = {}
        with_stages = [r.stages for r in good if r.stages]
        if with_stages:
            keys = [k for k in with_stages[0] if all(k in s for s in with_stages)]
            stages = {k: statistics.median(s[k] for s in with_stages) for k in keys}
        out[v.key] = {
            "label": v.label,
            "command": v.command,
            "runs": len(mine),
            "failed_runs": len(mine) - len(good),
            "errors": [r.error for r in mine if not r.ok],
            "seconds": times,
            "median_seconds": _median(times),
            "peak_rss_bytes": max(rss) if rss else None,
            "peak_rss_bytes_each": rss,
            "stages_median_seconds": stages,
            # everything but the pg_restore process itself: what backupbot adds
            "outside_pg_restore_median_seconds": _median(
                [r.seconds - r.stages["restore"] for r in good if "restore" in r.stages]
            ),
            "jobs": sorted({r.jobs for r in good if r.jobs is not None}),
            "overlapped": sorted({k for r in good for k in r.overlapped}),
            "load_1min_each": [r.load[0] for r in mine if r.load],
        }
    base = out.get("pg_restore", {}).get("median_seconds")
    for entry in out.values():
        med = entry["median_seconds"]
        entry["ratio_to_pg_restore"] = med / base if med is not None and base else None
    return out


def evaluate(summary: dict[str, dict[str, Any]], jobs: int) -> list[dict[str, Any]]:
    bot = summary["backupbot"]
    base = summary["pg_restore"]
    failed = bot["failed_runs"] > 0 or base["failed_runs"] > 0
    ratio = bot["ratio_to_pg_restore"]
    return [
        {
            "target": f"wall time <= {TARGET_TIME_RATIO}x pg_restore -j {jobs}",
            "value": f"{ratio:.3f}x" if ratio else "n/a",
            "pass": bool(ratio and not failed and ratio <= TARGET_TIME_RATIO),
        },
        {
            "target": f"backupbot ran pg_restore with -j {jobs} (a fair comparison)",
            "value": ", ".join(f"-j {j}" for j in bot["jobs"]) or "n/a",
            "pass": bot["jobs"] == [jobs],
        },
    ]


_fmt = bb._fmt


def render_markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    env = result["machine"]
    backup = result["backup"]
    db = result["database"]
    lines = [
        f"Restore benchmark, {result['date']}: {env['nproc']} CPUs, "
        f"{env['memory_bytes'] / 2**30:.0f} GiB RAM, PostgreSQL {env['postgres']}, "
        f"{result['reps']} repetitions (median), -j {result['jobs']}, backupbot via "
        f"{'the CLI' if result['via'] == 'cli' else 'the Python API in a child process'}.",
        "",
        f"Database `{db}`: {result['database_bytes'] / MB:.0f} MB on disk (pg_database_size). "
        f"Backup `{backup['id']}`: {backup['stored_size'] / MB:.1f} MB stored (zstd level "
        f"{result['compression_level']}), {backup['raw_size'] / MB:.1f} MB pg_dump archive. "
        "Tables: "
        + ", ".join(
            f"{t['table']} {t['rows']:,} rows {(t['table_bytes'] + t['index_bytes']) / MB:.0f} MB"
            for t in result["tables"]
        )
        + ".",
        "",
        "Load average (1 min) when each run started: "
        + "; ".join(
            f"{e['label']} {', '.join(f'{x:.2f}' for x in e['load_1min_each'])}" for e in s.values()
        )
        + " (2 cores: above 2 the machine was shared, and times are longer).",
        "",
        "| Variant | Command | Wall time (median) | x pg_restore | Peak RSS (backupbot) |",
        "|---|---|---:|---:|---:|",
    ]
    for entry in s.values():
        failed = f" ({entry['failed_runs']} failed)" if entry["failed_runs"] else ""
        times = entry["seconds"]
        spread = f" ({min(times):.1f}-{max(times):.1f})" if len(times) > 1 else ""
        rss = entry["peak_rss_bytes"]
        lines.append(
            f"| {entry['label']}{failed} | `{entry['command']}` "
            f"| {_fmt(entry['median_seconds'], '.2f', ' s')}{spread} "
            f"| {_fmt(entry['ratio_to_pg_restore'], '.3f', 'x')} "
            f"| {_fmt(rss / MB if rss else None, '.0f', ' MB')} |"
        )
    lines += ["", "| Target | Measured | Result |", "|---|---|---|"]
    for c in result["checks"]:
        lines.append(f"| {c['target']} | {c['value']} | {'PASS' if c['pass'] else 'FAIL'} |")
    bot = s["backupbot"]["stages_median_seconds"]
    base = s["pg_restore"]["stages_median_seconds"]
    if bot:
        cols = [*BOT_STAGES, "other"]
        lines += [
            "",
            "Stages (median s). backupbot's come from its restore record: download = read the "
            "artifact + SHA-256 + unpack to a file, create = CREATE DATABASE, restore = "
            "pg_restore, verify = count every table's rows against the manifest, other = wall "
            "time minus those (process start-up, state database, exit). "
            + (
                f"backupbot's {', '.join(s['backupbot']['overlapped'])} ran during the download "
                "(with the target inspection): its time is shown but is inside download's, not "
                "added to the total. "
                if s["backupbot"]["overlapped"]
                else ""
            )
            + "For pg_restore -j N the bench times CREATE DATABASE and pg_restore itself.",
            "",
            "| Variant | " + " | ".join(cols) + " | total |",
            "|---|" + "---:|" * (len(cols) + 1),
            f"| {s['backupbot']['label']} | "
            + " | ".join(_fmt(bot.get(c), ".2f") for c in cols)
            + f" | {_fmt(s['backupbot']['median_seconds'], '.2f')} |",
        ]
        if base:
            lines.append(
                f"| {s['pg_restore']['label']} | "
                + " | ".join(_fmt(base.get(c), ".2f") for c in cols)
                + f" | {_fmt(s['pg_restore']['median_seconds'], '.2f')} |"
            )
        outside = s["backupbot"]["outside_pg_restore_median_seconds"]
        base_wall = s["pg_restore"]["median_seconds"]
        if outside is not None and base_wall and bot.get("restore") and base.get("restore"):
            budget = (TARGET_TIME_RATIO - 1) * base_wall + (base.get("create") or 0)
            lines += [
                "",
                f"backupbot's time outside pg_restore: {outside:.2f} s (median); the "
                f"{TARGET_TIME_RATIO}x target leaves {budget:.2f} s for it (the "
                f"{TARGET_TIME_RATIO - 1:.0%} of pg_restore's wall time plus the CREATE DATABASE "
                "both do). Its pg_restore stage took "
                f"{bot['restore'] / base['restore']:.3f}x the plain pg_restore's.",
            ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-gb", type=float, default=1.0, help="database size (pg_database_size)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of each variant (median)")
    p.add_argument("--jobs", type=int, default=2, help="pg_restore -j for both variants")
    p.add_argument("--rebuild", action="store_true", help="rebuild the database")
    p.add_argument(
        "--database",
        default=bb.MAIN_DB,
        help=f"source database (default {bb.MAIN_DB}, shared with backup_bench.py)",
    )
    p.add_argument("--target", default=TARGET_DB, help="database the restores go into")
    p.add_argument(
        "--via",
        choices=("auto", "cli", "api"),
        default="auto",
        help="run backupbot's restore through the CLI or the Python API (auto: CLI if present)",
    )
    p.add_argument("--level", type=int, default=3, help="zstd level of the backup")
    p.add_argument("--pause", type=float, default=1.0, help="seconds of rest between runs")
    p.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the untimed pg_restore before the first round",
    )
    p.add_argument(
        "--profile",
        metavar="DIR",
        help="after the timed rounds, one untimed backupbot restore under -X importtime and "
        "cProfile, written to DIR",
    )
    p.add_argument("--work-dir", default=str(bb.REPO / "bench" / ".work"))
    p.add_argument("--results-dir", default=str(bb.REPO / "bench" / "results"))
    args = p.parse_args(argv)
    if args.size_gb <= 0 or args.reps < 1 or not 1 <= args.jobs <= 32:
        p.error("--size-gb must be > 0, --reps >= 1 and --jobs between 1 and 32")
    if args.target in (args.database, bb.MAIN_DB, bb.QUARTER_DB, "postgres"):
        p.error("--target must be another database than the benchmark's own")
    args.no_s3 = True  # what bb.Bench reads
    args.rss_scaling = False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, bb._raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    bench = RestoreBench(args)
    for d in (bench.work, bench.out, bench.logs):
        d.mkdir(parents=True, exist_ok=True)
    target = int(args.size_gb * 10**9)
    started = datetime.now(UTC)
    try:
        cluster = bench.start_cluster()
        size = bb.ensure_database(cluster, args.database, target, args.rebuild)
        bench.write_configs()
        bench.prepare_bot()
        bench.choose_interface()
        bench.take_backup()
        bench.unpack_baseline()
        variants = bench.restore_variants()
        runs = bench.measure_restores(variants)
        if args.profile:
            bench.profile_restore(Path(args.profile))
        summary = summarize(variants, runs)
        checks = evaluate(summary, args.jobs)
        assert bench.pg_bin is not None
        import zstandard

        result = {
            "date": started.isoformat(timespec="seconds"),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "reps": args.reps,
            "jobs": args.jobs,
            "via": bench.via,
            "size_gb_requested": args.size_gb,
            "compression_level": args.level,
            "database": args.database,
            "database_bytes": size,
            "tables": bb.table_stats(cluster, args.database),
            "backup": {k: bench.backup.get(k) for k in ("id", "stored_size", "raw_size", "sha256")},
            "restore_work_dir": str(bench.tmp_dir),
            "machine": {
                "nproc": os.cpu_count(),
                "memory_bytes": psutil.virtual_memory().total,
                "platform": platform.platform(),
                "python": platform.python_version(),
                "postgres": bb.server_version(cluster),
                "pg_restore": bb._tool_version([str(bench.pg_bin / "pg_restore"), "--version"]),
                "zstd_cli": bb._tool_version([bench.zstd, "--version"]) if bench.zstd else None,
                "python_zstandard": zstandard.__version__,
                "backupbot_command": " ".join(bench.bot_cmd),
            },
            "targets": {"time_ratio_max": TARGET_TIME_RATIO},
            "summary": summary,
            "checks": checks,
            "runs": [asdict(r) for r in runs],
        }
        markdown = render_markdown(result)
        bb.write_results(Path(args.results_dir), "restore_latest", result, markdown)
        all_ok = all(c["pass"] for c in checks) and all(r.ok for r in runs)
        return 0 if all_ok else 1
    except KeyboardInterrupt:
        log("interrupted; stopping children and the cluster")
        return 130
    finally:
        bb.kill_live_children()
        bench.cleanup()
        if bench.services is not None:
            with contextlib.suppress(Exception):
                bench.services.close()
        bench.shutdown()


if __name__ == "__main__":
    sys.exit(main())
