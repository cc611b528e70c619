"""Start-up of the `backupbot` CLI: `backupbot --help` and `backupbot status` (SQLite state,
one database, nothing backed up), against the bare interpreter (`python -c pass`) in the
same run, interleaved, median of N runs each: wall time, and the CPU time (user + system)
each process used, which a shared machine's load disturbs far less. Also where `status`'s
time goes: the modules whose import costs most (`python -X importtime`), and the load
average before and after.

Bytecode is cached as in an installed package (pip compiles it at install; the image
runs with PYTHONDONTWRITEBYTECODE=1 but has it): the warm-up run writes any missing
`.pyc`, even where the caller's environment says PYTHONDONTWRITEBYTECODE.

    .venv/bin/python bench/startup_bench.py [--runs 15] [--out bench/results/startup]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """state_url: sqlite:///state.db
storage: {local: {path: ./backups}}
databases:
  - name: app
    url: ${APP_DATABASE_URL}
"""


def _exe() -> str:
    return str(Path(sys.executable).with_name("backupbot"))


def _time(argv: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of `argv`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _imports(cwd: str, env: dict[str, str]) -> list[tuple[str, float, float]]:
    """(module, self seconds, cumulative seconds) of each module `status` imports."""
    argv = [sys.executable, "-X", "importtime", "-m", "backupbot.bot.cli.main", "status"]
    err = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True).stderr
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line:
            own, cumulative, name = line.split("|")
            if cumulative.strip().isdigit():
                own_us = int(own.split(":")[1])
                rows.append((name.strip(), own_us / 1e6, int(cumulative) / 1e6))
    return rows


def _top_imports(rows: list[tuple[str, float, float]], n: int = 8) -> list[tuple[str, float]]:
    """The costliest imports, cumulative (a module shared by several is charged to the
    first that imports it)."""
    mine = ("backupbot.", "sqlalchemy", "pydantic", "psycopg")
    top = [(name, cum) for name, _, cum in rows if name.startswith(mine)]
    return sorted(top, key=lambda r: -r[1])[:n]


def _by_package(rows: list[tuple[str, float, float]], n: int = 10) -> list[tuple[str, float]]:
    """Import time by package, each module's own time only (backupbot by subpackage)."""
    totals: dict[str, float] = {}
    for name, own, _ in rows:
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] == "backupbot" else parts[0]
        totals[key] = totals.get(key, 0.0) + own
    return sorted(totals.items(), key=lambda r: -r[1])[:n]


def _load(avg: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in avg)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--out", default="bench/results/startup")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        Path(cwd, "backupbot.yml").write_text(CONFIG)
        env = {**os.environ, "APP_DATABASE_URL": "postgresql://u@127.0.0.1:1/app"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "backupbot --help": [_exe(), "--help"],
            "backupbot status": [_exe(), "status"],
        }
        load_before = os.getloadavg()
        for argv in cases.values():
            _time(argv, cwd, env)  # creates the state database; writes missing bytecode
        walls: dict[str, list[float]] = {k: [] for k in cases}
        cpus: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.runs):
            for name, argv in cases.items():
                wall, cpu = _time(argv, cwd, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
        rows = _imports(cwd, env)
        load_after = os.getloadavg()
    medians = {k: statistics.median(v) for k, v in walls.items()}
    cpu_medians = {k: statistics.median(v) for k, v in cpus.items()}
    result = {
        "runs": args.runs,
        "median_seconds": medians,
        "median_cpu_seconds": cpu_medians,
        "load_average": {"before": load_before, "after": load_after},
        "cpus": os.cpu_count(),
        "status_imports": _top_imports(rows),
        "status_imports_by_package": _by_package(rows),
        "status_import_seconds": sum(own for _, own, _ in rows),
    }
    Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    base, cpu_base = medians["python -c pass"], cpu_medians["python -c pass"]
    lines = [f"# CLI start-up, median of {args.runs} interleaved runs", ""]
    lines += [
        f"{os.cpu_count()} CPUs; load average (1, 5, 15 min) {_load(load_before)} before "
        f"the runs, {_load(load_after)} after.",
        "",
    ]
    lines += ["| command | wall | minus bare interpreter | CPU (user + sys) | minus bare |"]
    lines += ["|---|---|---|---|---|"]
    lines += [
        f"| `{k}` | {v:.3f} s | {v - base:.3f} s | {cpu_medians[k]:.3f} s "
        f"| {cpu_medians[k] - cpu_base:.3f} s |"
        for k, v in medians.items()
    ]
    lines += ["", "Costliest imports of `backupbot status` (cumulative):", ""]
    lines += [f"- `{name}` {secs:.3f} s" for name, secs in result["status_imports"]]
    total = result["status_import_seconds"]
    lines += ["", f"Its imports by package (own time; all imports {total:.3f} s):", ""]
    lines += [f"- `{name}` {secs:.3f} s" for name, secs in result["status_imports_by_package"]]
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
