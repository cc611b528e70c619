"""Start-up of the `backupbot` CLI: `backupbot --help` and `backupbot status` (SQLite state,
one database, nothing backed up), against the bare interpreter (`python -c pass`) in the
same run, interleaved, median of N runs each. Also where `status`'s time goes: the
modules whose import costs most (`python -X importtime`).

    .venv/bin/python bench/startup_bench.py [--runs 15] [--out bench/results/startup]
"""

from __future__ import annotations

import argparse
import json
import os
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


def _time(argv: list[str], cwd: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _top_imports(cwd: str, env: dict[str, str], n: int = 8) -> list[tuple[str, float]]:
    argv = [sys.executable, "-X", "importtime", "-m", "backupbot.bot.cli.main", "status"]
    err = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True).stderr
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit():
                rows.append((name.strip(), int(cumulative) / 1e6))
    top = [r for r in rows if r[0].startswith(("backupbot.", "sqlalchemy", "pydantic", "psycopg"))]
    return sorted(top, key=lambda r: -r[1])[:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--out", default="bench/results/startup")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        Path(cwd, "backupbot.yml").write_text(CONFIG)
        env = {**os.environ, "APP_DATABASE_URL": "postgresql://u@127.0.0.1:1/app"}
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "backupbot --help": [_exe(), "--help"],
            "backupbot status": [_exe(), "status"],
        }
        _time(cases["backupbot status"], cwd, env)  # creates the state database
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.runs):
            for name, argv in cases.items():
                times[name].append(_time(argv, cwd, env))
        imports = _top_imports(cwd, env)
    medians = {k: statistics.median(v) for k, v in times.items()}
    result = {"runs": args.runs, "median_seconds": medians, "status_imports": imports}
    Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    base = medians["python -c pass"]
    lines = [f"# CLI start-up, median of {args.runs} interleaved runs", ""]
    lines += ["| command | median | minus bare interpreter |", "|---|---|---|"]
    lines += [f"| `{k}` | {v:.3f} s | {v - base:.3f} s |" for k, v in medians.items()]
    lines += ["", "Costliest imports of `backupbot status` (cumulative):", ""]
    lines += [f"- `{name}` {secs:.3f} s" for name, secs in imports]
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
