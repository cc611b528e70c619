"""The four speed targets of issue 14 in one run: the backup bench (local and S3 against
the `pg_dump -Fc -Z0 > /dev/null` floor, peak RSS), the restore bench (against plain
`pg_restore -j N` on the same archive) and the start-up bench, one after the other on the
same machine, then one table of target, measured figure and verdict.

    .venv/bin/python bench/targets.py [--size-gb 1] [--reps 3] [--results-dir bench/results]

Each bench interleaves its own baseline with backupbot and writes its own results
(`latest.*`, `restore_latest.*`, `startup.*`); this writes `targets.md` and `targets.json`
beside them. Exit status 0 when every target holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
MB = 10**6  # as the benches report sizes


def _run(script: str, *args: str) -> int:
    print(f"== {script} {' '.join(args)}", flush=True)
    return subprocess.run([sys.executable, str(BENCH / script), *args], check=False).returncode


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _check(target: str, value: float | None, limit: float, unit: str) -> dict[str, Any]:
    shown = "n/a" if value is None else f"{value:.2f}{unit}"
    return {"target": target, "measured": shown, "pass": value is not None and value <= limit}


def _verdict(check: dict[str, Any]) -> str:
    return "PASS" if check["pass"] else "FAIL"


def targets(results: Path) -> list[dict[str, Any]]:
    """The verdicts from the benches' latest results in `results`."""
    backup = _load(results / "latest.json").get("summary", {})
    restore = _load(results / "restore_latest.json").get("summary", {})
    startup = _load(results / "startup.json").get("median_seconds", {})
    local = backup.get("bot_local", {})
    s3 = backup.get("bot_s3", {})
    rss = s3.get("peak_rss_bytes")
    return [
        _check("backup, local store: <= 1.3x the floor", local.get("ratio_to_floor"), 1.3, "x"),
        _check("backup, S3: <= 1.5x the floor", s3.get("ratio_to_floor"), 1.5, "x"),
        _check("backup, S3: peak RSS <= 150 MB", rss / MB if rss else None, 150, " MB"),
        _check(
            "restore: <= 1.05x pg_restore -j N",
            restore.get("backupbot", {}).get("ratio_to_pg_restore"),
            1.05,
            "x",
        ),
        _check("`backupbot --help` < 0.3 s", startup.get("backupbot --help"), 0.3, " s"),
        _check("`backupbot status` < 0.3 s", startup.get("backupbot status"), 0.3, " s"),
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--size-gb", default="1", help="database size for the backup and restore benches"
    )
    p.add_argument("--reps", default="3", help="repetitions per variant (median)")
    p.add_argument("--results-dir", default=str(BENCH / "results"))
    args = p.parse_args()
    results = Path(args.results_dir)
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    t0 = time.monotonic()
    common = ["--size-gb", args.size_gb, "--reps", args.reps, "--results-dir", str(results)]
    _run("backup_bench.py", *common)
    _run("restore_bench.py", *common)
    _run("startup_bench.py", "--out", str(results / "startup"))
    checks = targets(results)
    out = {
        "date": started.isoformat(timespec="seconds"),
        "minutes": round((time.monotonic() - t0) / 60, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "size_gb": args.size_gb,
        "reps": args.reps,
        "checks": checks,
    }
    (results / "targets.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    lines = [
        f"Speed targets, one run of `bench/targets.py --size-gb {args.size_gb} --reps "
        f"{args.reps}` started {out['date']} ({out['minutes']} min; load average "
        f"{out['load_average_before'][0]} before, {out['load_average_after'][0]} after). "
        "Details: `latest.md`, `restore_latest.md`, `startup.md`.",
        "",
        "| Target | Measured | Result |",
        "|---|---:|---|",
        *(
            f"| {c['target']} | {c['measured']} | {'PASS' if c['pass'] else 'FAIL'} |"
            for c in checks
        ),
    ]
    (results / "targets.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0 if all(c["pass"] for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
