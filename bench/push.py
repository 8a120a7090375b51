"""Push -> new ReplicaSet with cron alone, ours against the upstream Rust binary, interleaved.

One labeled Deployment (one replica, run by the simulated node), the same upstream-format config file
and `*/5 * * * * *` schedule for both tools. A run starts one tool, lets its first cycle pass, then
moves the tag `--pushes` times, each push at a random offset to the schedule's tick (the same
offsets for both tools within a run), and times the
push (its last blob and manifest written) to the Deployment's new ReplicaSet. Runs alternate
ours, upstream, ours, ... (`--runs` of each), so a change in the machine's load hits both.

Usage: python -m bench.push [--runs 3] [--pushes 10] [--cron 5] [--out push] [--tools ours,upstream]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from typing import Any

import yaml

from autorollout.kube.paths import workload_collection
from bench.env import BenchEnv, bench_env, log, save
from bench.fleet import Image, move_tags, push_images
from bench.proc import load_average
from bench.upstream import UPSTREAM_BIN, UPSTREAM_VERSION, Tool, our_cycles, start_tool, upstream_cycles
from certs.mint import write_bundle
from tests.harness.registry import free_port

NAMESPACE = "push-latency"


def _replicasets(env: BenchEnv) -> int:
    async def go() -> int:
        async with env.kube() as kube:
            path = workload_collection("Deployment", NAMESPACE).replace("deployments", "replicasets")
            return len((await kube.list(path)).get("items") or [])

    return asyncio.run(go())


def _wait(what: str, check: Any, limit: float, step: float = 0.05) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > limit:
            raise TimeoutError(what)
        time.sleep(step)
    return time.monotonic() - started


def one_run(
    env: BenchEnv,
    tool: Tool,
    cycles_of: Any,
    image: Image,
    *,
    pushes: int,
    cron: int,
    rng: random.Random,
    seed: int,
) -> tuple[list[dict[str, float]], Image]:
    """`pushes` tag moves at random offsets to the tick; per push: offset and push -> new ReplicaSet."""
    try:
        _wait(f"{tool.name}: first cycle", lambda: len(cycles_of(tool)) >= 1, 120, 0.2)
        samples = []
        for n in range(pushes):
            offset = rng.uniform(0, cron)  # the same offsets for both tools of a run (same seed)
            now = time.time()
            time.sleep((offset - now % cron) % cron)
            before, started = _replicasets(env), env.kubelet.started_pods
            (image,) = move_tags(env.registry, [image], seed=seed * 1000 + n)
            pushed = time.time()
            latency = _wait("new ReplicaSet", lambda b=before: _replicasets(env) > b, cron * 4 + 30)
            # The next push waits for the new pod to run: upstream compares the tag with what the
            # pods report, and a pod started after the next push would report that push's digest.
            _wait("new pod running", lambda s=started: env.kubelet.started_pods > s, 60, 0.1)
            # the push itself took a little: its offset is when it became visible
            # from the first tick after the push: what is left once the wait for the tick is taken out
            after_tick = latency - (cron - pushed % cron)
            samples.append(
                {
                    "offset_seconds": round(pushed % cron, 3),
                    "latency_seconds": latency,
                    "after_tick_seconds": after_tick,
                }
            )
            log(f"{tool.name}: +{pushed % cron:.2f} s into the tick: new ReplicaSet after {latency:.2f} s")
            time.sleep(0.5)  # let the rollout's own follow-ups settle
    finally:
        tool.stop()
    return samples, image


def summary(samples: list[dict[str, float]]) -> dict[str, float]:
    latencies = [s["latency_seconds"] for s in samples]
    return {
        "after_tick_median_seconds": statistics.median(s["after_tick_seconds"] for s in samples),
        "median_seconds": statistics.median(latencies),
        "max_seconds": max(latencies),
        "min_seconds": min(latencies),
        "pushes": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pushes", type=int, default=10)
    parser.add_argument("--cron", type=int, default=5)
    parser.add_argument("--out", default="push")
    parser.add_argument("--tools", default="ours,upstream", help="comma-separated: ours, upstream")
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    if "upstream" in tools and not UPSTREAM_BIN.exists():
        raise SystemExit(f"{UPSTREAM_BIN} missing: run bench/install-upstream.sh")
    with bench_env(kubelet_namespaces=(NAMESPACE,)) as env:
        (image,) = push_images(env.registry, "bench/push", 1, seed=18)
        env.fleet(NAMESPACE, [image], 0, 1, replicas=1)
        _wait("pod running", lambda: env.kubelet.started_pods >= 1, 120, 0.2)
        kubeconfig = env.workdir / "push.kubeconfig"
        kubeconfig.write_text(env.cluster.kubeconfig.read_text())
        env.cluster.kubectl(
            "config", "set-context", "--current", f"--namespace={NAMESPACE}", f"--kubeconfig={kubeconfig}"
        )
        config_path = env.workdir / "push-config.yaml"
        config_path.write_text(
            yaml.safe_dump(
                {
                    "cronSchedule": f"*/{args.cron} * * * * *",
                    "webserver": {"port": free_port()},
                    "registries": [{"hostnamePattern": "127.0.0.1*", "secret": {"type": "None"}}],
                    "tls": {"caCertificatePaths": [str(env.registry.ca_file)]},
                }
            )
        )
        bundle = write_bundle(env.workdir / "tls", ["localhost"], ["127.0.0.1"])
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in tools}
        for r in range(args.runs):
            for name in tools if r % 2 == 0 else tools[::-1]:
                load = load_average()
                tool = start_tool(name, env, kubeconfig, config_path, bundle, r)
                samples, image = one_run(
                    env,
                    tool,
                    our_cycles if name == "ours" else upstream_cycles,
                    image,
                    pushes=args.pushes,
                    cron=args.cron,
                    rng=random.Random(18 + r),
                    seed=100 * r + (1 if name == "ours" else 2),
                )
                runs[name].append({"load": round(load, 2), "samples": samples, **summary(samples)})
                log(f"{name} run {r + 1}: {summary(samples)}")
        results: dict[str, Any] = {
            "machine": env.facts,
            "upstream_version": UPSTREAM_VERSION,
            "cron_seconds": args.cron,
            "runs": runs,
        }
        for name, tool_runs in runs.items():
            every = [s for run in tool_runs for s in run["samples"]]
            results[name] = {
                **summary(every),
                "run_medians": [run["median_seconds"] for run in tool_runs],
                "run_maxima": [run["max_seconds"] for run in tool_runs],
                "loads": [run["load"] for run in tool_runs],
            }
    save(args.out, results)


if __name__ == "__main__":
    main()
