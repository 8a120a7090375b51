"""Side by side with the upstream Rust binary: same cluster, registry, workloads, config file, run.

Both tools get the same upstream-format config file (CONFIG_FILE) and a kubeconfig whose context
namespace is the benchmark namespace (upstream works in its client's default namespace). Upstream
needs running pods (it reads `containerStatuses[].imageID`): the Deployments have one replica each,
run by the simulated node. The tools run one at a time, so neither rolls out the other's work, in
`--runs` interleaved rounds (ours, upstream, upstream, ours, ...); the figures are medians over
runs. Per tool: cycle time, registry requests per cycle (access log, by User-Agent), API requests
per cycle (the API server's apiserver_request_total, by user), peak RSS, and time from a tag push
to the new ReplicaSets.

Usage: python -m bench.upstream [--workloads 200] [--images 50] [--cycles 3] [--runs 3]
Needs the binary: scripts in bench/README.md (`cargo install kube-autorollout --version ...`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from autorollout.kube.paths import workload_collection
from bench.env import BenchEnv, bench_env, log, save
from bench.fleet import Image, move_tags, push_images
from bench.proc import load_average, memory_kib
from certs.mint import write_bundle
from tests.harness.commands import webhook_flags
from tests.harness.registry import free_port

UPSTREAM_VERSION = os.environ.get("UPSTREAM_VERSION", "0.5.2")
UPSTREAM_BIN = Path.home() / f".cache/kube-autorollout/upstream-{UPSTREAM_VERSION}/bin/kube-autorollout"
CLI = str(Path(sys.executable).with_name("kube-autorollout"))
CRON_SECONDS = 15
_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if "proxy" not in k.lower() and k not in ("CONFIG_FILE", "KUBECONFIG")
    }
    env.update(extra)
    return env


class Tool:
    """One tool as a process: start, RSS, logs, stop."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.started = time.time()
        with log_path.open("wb") as out:
            self.popen = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def memory(self) -> dict[str, int]:
        return memory_kib(self.popen.pid)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


def our_cycles(tool: Tool) -> list[float]:
    """Cycle durations (s) from our JSON log's `cycle finished` lines."""
    found = []
    for line in tool.text().splitlines():
        if '"cycle finished' in line:
            with contextlib.suppress(ValueError):
                found.append(float(yaml.safe_load(line)["duration_ms"]) / 1000)
    return found


def upstream_cycles(tool: Tool) -> list[float]:
    """Cycle durations (s) from upstream's log: its Deployment scan line to its DaemonSet scan line
    (StatefulSets and DaemonSets are empty here, so that is the whole cycle within milliseconds)."""
    starts: list[datetime] = []
    found = []
    for line in tool.text().splitlines():
        match = _TS.match(line)
        if not match or "Scanning for digest changes" not in line:
            continue
        stamp = datetime.fromisoformat(match.group(1)[:26])
        if "kind=Deployment" in line:
            starts.append(stamp)
        elif "kind=DaemonSet" in line and starts:
            found.append((stamp - starts[-1]).total_seconds())
    return found


def apiserver_requests(env: BenchEnv) -> dict[str, int]:
    """apiserver_request_total summed by verb (all clients) from the API server's /metrics."""
    text = env.cluster.kubectl("get", "--raw", "/metrics").stdout
    totals: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            verb = re.search(r'verb="([A-Z]+)"', line)
            resource = re.search(r'resource="([a-z]+)"', line)
            if verb and resource and resource.group(1) in ("pods", "deployments", "events"):
                key = f"{verb.group(1)} {resource.group(1)}"
                totals[key] = totals.get(key, 0) + int(float(line.rsplit(" ", 1)[1]))
    return totals


def replicasets(env: BenchEnv, namespace: str) -> int:
    async def go() -> int:
        async with env.kube() as kube:
            listing = await kube.list(
                workload_collection("Deployment", namespace).replace("deployments", "replicasets")
            )
            return len(listing.get("items") or [])

    return asyncio.run(go())


def wait_for(what: str, check: Any, limit: float) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > limit:
            raise TimeoutError(what)
        time.sleep(0.2)
    return time.monotonic() - started


def measure(
    env: BenchEnv,
    tool: Tool,
    cycles_of: Any,
    *,
    namespace: str,
    images: list[Image],
    workloads: int,
    cycles: int,
    agent: str | None,
    seed: int,
) -> tuple[dict[str, Any], list[Image]]:
    """Let `cycles` idle cycles pass, then move one tag and time the rollout it causes."""

    def registry_count() -> int:
        if agent is not None:
            return env.registry.request_count(user_agent_substring=agent)
        # upstream sends no User-Agent of its own: count what is neither ours, the node's nor the harness's
        return sum(
            1
            for e in env.registry.requests()
            if not any(a in e.user_agent for a in ("kube-autorollout/", "python-httpx", "kar-test-harness"))
        )

    wait_for(f"{tool.name}: first cycle", lambda: len(cycles_of(tool)) >= 1, 120)
    reg0, api0, n0 = registry_count(), apiserver_requests(env), len(cycles_of(tool))
    wait_for(
        f"{tool.name}: {cycles} cycles",
        lambda: len(cycles_of(tool)) >= n0 + cycles,
        CRON_SECONDS * (cycles + 3) + 120,
    )
    reg1, api1 = registry_count(), apiserver_requests(env)
    done = len(cycles_of(tool)) - n0
    per_cycle_api = {k: round((v - api0.get(k, 0)) / done, 1) for k, v in api1.items() if v - api0.get(k, 0)}
    rs_before = replicasets(env, namespace)
    affected = sum(1 for i in range(workloads) if i % len(images) == 0)
    pushed = time.monotonic()
    moved = move_tags(env.registry, images[:1], seed=seed)
    pushed_wall = time.time()
    # Both run on the same */15 s schedule: the cycle that can see the push starts at the next tick.
    tick = math.ceil(pushed_wall / CRON_SECONDS) * CRON_SECONDS
    first = wait_for(
        "first new ReplicaSet", lambda: replicasets(env, namespace) > rs_before, CRON_SECONDS * 3 + 60
    )
    every = first + wait_for(
        "all new ReplicaSets",
        lambda: replicasets(env, namespace) >= rs_before + affected,
        CRON_SECONDS * 3 + 60,
    )
    first_wall = pushed_wall + first
    every_wall = pushed_wall + every
    result = {
        "tick_to_first_rollout_seconds": first_wall - tick,
        "tick_to_all_rollouts_seconds": every_wall - tick,
        "cycles_seconds": cycles_of(tool)[1:],  # the first one may include start-up work
        "cycle_median_seconds": statistics.median(cycles_of(tool)[1:] or cycles_of(tool)),
        "registry_requests_per_cycle": (reg1 - reg0) / done,
        "apiserver_requests_per_cycle": per_cycle_api,
        "push_to_first_rollout_seconds": first,
        "push_to_all_rollouts_seconds": every,
        "rollouts_expected": affected,
        "rss_kib": tool.memory(),
        "since_push": time.monotonic() - pushed,
    }
    log(f"{tool.name}: {result}")
    return result, [*moved, *images[1:]]


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over runs (peak RSS: the highest), with each run's load."""
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and k != "load"]
    found: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in keys}
    found["apiserver_requests_per_cycle"] = {
        k: statistics.median(r["apiserver_requests_per_cycle"].get(k, 0) for r in runs)
        for k in {k for r in runs for k in r["apiserver_requests_per_cycle"]}
    }
    found["rss_kib"] = {"VmHWM": max(r["rss_kib"]["VmHWM"] for r in runs)}
    found["loads"] = [r["load"] for r in runs]
    found["cycle_medians"] = [r["cycle_median_seconds"] for r in runs]
    return found


def start_tool(name: str, env: BenchEnv, kubeconfig: Path, config: Path, bundle: Any, run: int) -> Tool:
    if name == "ours":
        argv = [CLI, "run", "--kubeconfig", str(kubeconfig)]
        argv += webhook_flags(bundle.tls_cert, bundle.tls_key, free_port())
        return Tool("ours", argv, _env({"CONFIG_FILE": str(config)}), env.workdir / f"ours-{run}.log")
    extra = {"CONFIG_FILE": str(config), "KUBECONFIG": str(kubeconfig), "NO_COLOR": "1", "RUST_LOG": "info"}
    return Tool("upstream", [str(UPSTREAM_BIN)], _env(extra), env.workdir / f"upstream-{run}.log")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workloads", type=int, default=200)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="runs of each tool, interleaved")
    parser.add_argument("--out", default="upstream")
    args = parser.parse_args()
    if not UPSTREAM_BIN.exists():
        sys.exit(f"{UPSTREAM_BIN} missing: see bench/README.md (cargo install kube-autorollout)")
    namespace = "side-by-side"
    with bench_env(kubelet_namespaces=(namespace,)) as env:
        images = push_images(env.registry, "bench/side", args.images, seed=7)
        log(f"creating {args.workloads} Deployments (1 replica each) over {args.images} images")
        env.fleet(namespace, images, 0, args.workloads, replicas=1)
        wait_for(
            "pods running",
            lambda: env.kubelet.started_pods >= args.workloads,
            300,
        )
        kubeconfig = env.workdir / "side.kubeconfig"
        kubeconfig.write_text(env.cluster.kubeconfig.read_text())
        env.cluster.kubectl(
            "config", "set-context", "--current", f"--namespace={namespace}", f"--kubeconfig={kubeconfig}"
        )
        config = {
            "cronSchedule": f"*/{CRON_SECONDS} * * * * *",
            "webserver": {"port": free_port()},
            "registries": [{"hostnamePattern": "127.0.0.1*", "secret": {"type": "None"}}],
            "tls": {"caCertificatePaths": [str(env.registry.ca_file)]},
        }
        config_path = env.workdir / "upstream-config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        results: dict[str, Any] = {"machine": env.facts, "workloads": args.workloads, "images": args.images}
        # What the API server serves with neither tool running (the simulated node polls pods).
        idle0 = apiserver_requests(env)
        time.sleep(CRON_SECONDS)
        results["apiserver_idle_per_cycle"] = {
            k: v - idle0.get(k, 0) for k, v in apiserver_requests(env).items() if v - idle0.get(k, 0)
        }
        results["upstream_version"] = UPSTREAM_VERSION

        bundle = write_bundle(env.workdir / "tls", ["localhost"], ["127.0.0.1"])
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "upstream": []}
        for r in range(args.runs):
            # interleaved (ours, upstream, upstream, ours, ...): a change in the machine's load hits both
            for name in ("ours", "upstream") if r % 2 == 0 else ("upstream", "ours"):
                load = load_average()
                tool = start_tool(name, env, kubeconfig, config_path, bundle, r)
                try:
                    result, images = measure(
                        env,
                        tool,
                        our_cycles if name == "ours" else upstream_cycles,
                        namespace=namespace,
                        images=images,
                        workloads=args.workloads,
                        cycles=args.cycles,
                        agent="kube-autorollout/" if name == "ours" else None,
                        seed=20 + 10 * r + (1 if name == "ours" else 2),
                    )
                finally:
                    tool.stop()
                result["load"] = round(load, 2)
                runs[name].append(result)
        results["runs"] = runs
        for name, tool_runs in runs.items():
            results[name] = aggregate(tool_runs)
        results["cycle_ratio_per_run"] = [
            u["cycle_median_seconds"] / o["cycle_median_seconds"]
            for o, u in zip(runs["ours"], runs["upstream"], strict=True)
        ]
        results["floors"] = {"registry_head_seconds": env.head_floor(images[0])}
    save(args.out, results)


if __name__ == "__main__":
    main()
