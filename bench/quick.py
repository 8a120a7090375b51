"""A quick side-by-side comparison (about 3 minutes on 2 cores, once the upstream binary is built):
short runs of bench/push.py (ours and upstream, one run each), bench/admission.py (one pass of
3 s per target) and bench/planning.py, then one table. Its figures are indications, not the
published ones (those are medians of the full runs, `make bench`); results go to
bench/results/quick-*.json, which git ignores.

Usage: python -m bench.quick [--pushes 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from typing import Any

from bench.env import RESULTS, log
from bench.proc import load_average


def _run(*argv: str) -> None:
    log(f"running {' '.join(argv)}")
    subprocess.run([sys.executable, "-m", *argv], check=True)


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RESULTS / f"{name}.json").read_text())
    return data


def _median(runs: list[dict[str, Any]], target: str, mode: str, key: str) -> float:
    return statistics.median(r[key] for r in runs if r["target"] == target and r["mode"] == mode)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pushes", type=int, default=4)
    args = parser.parse_args()
    load = load_average()
    _run("bench.push", "--runs", "1", "--pushes", str(args.pushes), "--out", "quick-push")
    _run("bench.admission", "--duration", "3", "--repeat", "1", "--out", "quick-admission")
    planning = subprocess.run(
        [sys.executable, "-m", "bench.planning", "--repeat", "5"], check=True, capture_output=True, text=True
    )
    plan = json.loads(planning.stdout)
    push = _load("quick-push")
    runs = _load("quick-admission")["runs"]
    bare = _median(runs, "bare", "max", "rps")
    warm = _median(runs, "warm", "max", "rps")
    rows = [
        (
            f"push -> new ReplicaSet, cron every {push['cron_seconds']} s, median (max)",
            f"{push['ours']['median_seconds']:.2f} s ({push['ours']['max_seconds']:.2f} s)",
            f"{push['upstream']['median_seconds']:.2f} s ({push['upstream']['max_seconds']:.2f} s)",
        ),
        (
            "  of which after the first tick that follows the push, median",
            f"{push['ours']['after_tick_median_seconds']:.2f} s",
            f"{push['upstream']['after_tick_median_seconds']:.2f} s",
        ),
        (
            "admission, warm, 16 conn.: req/s, share of raw ASGI",
            f"{warm:,.0f}/s, {warm / bare:.0%} of {bare:,.0f}/s",
            "(upstream has no webhook)",
        ),
        (
            "admission, warm, ~1,000/s paced: p99",
            f"{_median(runs, 'warm', 'paced', 'p99') * 1000:.1f} ms",
            "",
        ),
        (
            f"planning per workload ({plan['workloads']:,} workloads, CPU)",
            f"{plan['per_workload_us']:.1f} µs",
            "",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\nquick comparison (1-min load {load:.1f} at start, {load_average():.1f} at end)")
    print(f"{'':{width}}  {'ours':<34} upstream {push['upstream_version']}")
    for what, ours, upstream in rows:
        print(f"{what:{width}}  {ours:<34} {upstream}")


if __name__ == "__main__":
    main()
