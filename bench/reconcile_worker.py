"""The reconciler in a process of its own, driven line by line from stdin (bench/reconcile.py).

It builds the Reconciler exactly as `kube-autorollout reconcile` does (open_reconciler), fills its
watch-fed cache, runs the first cycle, then one cycle per `cycle` line; after each it prints one
JSON line: cycle time, API requests by verb, unique images, outcomes, RSS now and peak.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from autorollout.cli.reconcile import open_reconciler
from autorollout.config import load_config
from autorollout.logs import configure_logging
from bench.proc import memory_kib
from reconciler.report import CycleReport


def _line(kind: str, report: CycleReport | None = None, **more: Any) -> None:
    body: dict[str, Any] = {"kind": kind, **more, **memory_kib()}
    if report is not None:
        body.update(
            cycle_seconds=report.duration,
            workloads=report.workloads,
            unique_images=report.unique_images,
            api_requests=report.api_requests,
            outcomes=dict(Counter(str(o.result) for o in report.outcomes)),
            attempts=sum(o.attempts for o in report.outcomes),
            registry_errors=len(report.registry_errors),
        )
    sys.stdout.write(orjson.dumps(body).decode() + "\n")
    sys.stdout.flush()


async def main(config_path: str, kubeconfig: str, started: float) -> None:
    config = load_config(config_path)
    configure_logging(config.log_level, "json")  # as the CLI does: one line per decision
    loop = asyncio.get_running_loop()
    async with open_reconciler(config, kubeconfig) as reconciler:
        before = Counter(reconciler.kube.requests)
        t0 = time.monotonic()
        await reconciler.start(watch=True)
        filled = time.monotonic() - t0
        fill_requests = {k: v - before.get(k, 0) for k, v in reconciler.kube.requests.items()}
        report = await reconciler.cycle.run()
        _line(
            "first",
            report,
            cache_fill_seconds=filled,
            cache_fill_requests=fill_requests,
            since_process_start=time.monotonic() - started,
        )
        while True:
            command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if command in ("", "quit"):
                return
            if command == "cycle":
                _line("cycle", await reconciler.cycle.run())
            elif command.startswith("cycle-profile "):
                # the whole process on this thread (cycle, watches, Events) under cProfile, as text
                profiler = cProfile.Profile()
                profiler.enable()
                report = await reconciler.cycle.run()
                profiler.disable()
                out = io.StringIO()
                for order in ("tottime", "cumulative"):
                    pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(45)
                Path(command.split(" ", 1)[1]).write_text(out.getvalue())  # noqa: ASYNC240
                _line("cycle", report)
            elif command.startswith("wait-recorded "):
                # wait until the cache shows `n` records with this substring (a moved digest)
                _, needle, n = command.split()
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    seen = sum(
                        1 for w in reconciler.cache.workloads() for v in w.recorded.values() if needle in v
                    )
                    if seen >= int(n):
                        break
                    await asyncio.sleep(0.05)
                _line("waited", seen=seen)


if __name__ == "__main__":
    process_started = time.monotonic()
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.config, args.kubeconfig, process_started))
