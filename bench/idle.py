"""Idle memory of `run` and `webhook` (with and without a kubeconfig): VmRSS once /readyz answers 204
and start-up has settled, median of `--repeat` starts; and each big dependency's share (VmRSS of a
fresh interpreter after importing it, less that of a bare one).

Usage: python -m bench.idle [--repeat 3] [--settle 3] [--out idle]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.env import log, save
from bench.proc import machine
from tests.harness.cluster import LocalCluster
from tests.harness.memory import idle_rss_kib

# Imported alone, in this order, each measured as the growth over what was imported before it.
# In the order `run` needs them; after the libraries, our own modules (what each adds on top); last,
# two that neither `run` nor `webhook` loads, for comparison.
DEPENDENCIES = (
    "ssl",
    "asyncio",
    "pydantic",
    "pydantic.main",  # BaseModel: what the first model class needs besides `import pydantic`
    "yaml",
    "httpx",
    "croniter",
    "prometheus_client",
    "starlette.applications",
    "uvicorn",
    "uvloop",
    "orjson",
    "jsonpatch",
    "autorollout.config",
    "autorollout.registry.client",
    "autorollout.kube",
    "webhook.app",
    "reconciler.reconciler",
    "autorollout.cli.run",
    "cryptography.x509",
    "kubernetes.config",
)


def dependency_shares() -> dict[str, int]:
    """KiB each dependency adds to a fresh interpreter's VmRSS, imported one after the other."""
    script = (
        "import importlib, sys\n"
        "def rss():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmRSS:'): return int(line.split()[1])\n"
        "before = rss(); print('python', before)\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name); now = rss(); print(name, now - before); before = now\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *DEPENDENCIES], capture_output=True, text=True, check=True
    ).stdout
    return {name: int(kib) for name, kib in (line.split() for line in out.splitlines())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--out", default="idle")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kar-idle-"))
    log("starting the local control plane")
    results: dict[str, Any] = {"machine": machine(), "dependencies_kib": dependency_shares()}
    with LocalCluster() as cluster:
        cluster.kubectl("create", "namespace", "empty")
        kubeconfig = str(cluster.kubeconfig)
        for label, command, config in (
            ("run", "run", kubeconfig),
            ("webhook", "webhook", kubeconfig),
            ("webhook_no_kubeconfig", "webhook", None),
        ):
            runs = [
                idle_rss_kib(workdir / f"{label}-{i}", command, config, settle=args.settle)
                for i in range(args.repeat)
            ]
            log(f"{label}: VmRSS KiB {runs}")
            results[label] = {"vmrss_kib": runs, "median_mib": round(statistics.median(runs) / 1024, 1)}
    save(args.out, results)


if __name__ == "__main__":
    main()
