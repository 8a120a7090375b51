"""Start-up of `kube-autorollout run`: time from exec to /readyz 204 and idle RSS, nothing in scope
(the reconcile benchmark measures the same at 100, 1,000 and 10,000 workloads).

Usage: python -m bench.startup [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import Any

from bench.env import bench_env, log, save
from bench.fleet import create_namespace
from bench.runproc import measure_run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default="startup")
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    with bench_env() as env:

        async def namespace() -> None:
            async with env.kube() as kube:
                await create_namespace(kube, "empty")

        asyncio.run(namespace())
        for i in range(args.repeat):
            run = measure_run(
                env.workdir / f"run-{i}", env.kubeconfig, namespace="empty", ca_file=env.registry.ca_file
            )
            log(f"start-up {i}: {run}")
            runs.append(run)
        results = {
            "machine": env.facts,
            "runs": runs,
            "ready_seconds_median": statistics.median(r["ready_seconds"] for r in runs),
            "idle_rss_kib_median": statistics.median(r["after_cycles"]["VmRSS"] for r in runs),
        }
    save(args.out, results)


if __name__ == "__main__":
    main()
