"""Push to new ReplicaSet in one run on one cluster: ours through registry events (Debian's
docker-registry notifying the receiver), ours with cron alone, and the upstream Rust binary (cron
only, it has no events), the last two on the same `--cron` schedule and config file.

One labeled Deployment (one replica, run by the simulated node: upstream only looks at workloads
with Ready pods) on a tag of the TLS registry. Per push: the time from the end of the tag's
manifest PUT (when the registry emits its notification) to the moment the Deployment's new
ReplicaSet exists in the API (polled every 10 ms); the next push waits for the new pod to run (upstream
compares the tag with what the pods report). Events: pushes 0.2-1.5 s apart, ours at the default
schedule (`*/45 * * * * *`, so no cron tick helps). Cron: pushes at random offsets to the tick, the
same offsets for both tools of a round; `--rounds` rounds, the two cron tools' order alternating.

The floor is what no product can skip: one HEAD of the tag at the registry, plus a PATCH of the pod
template and the controller's reaction to it (measured by patching the template directly and
waiting for the new ReplicaSet the same way). Above it: for events, the notification's delivery,
the coalescing window (`coalesceSeconds`, 0.1 s) and the cycle's work; for cron, the wait for the
next tick (half the schedule on average) and what each tool does after it.

Usage: python -m bench.push_events [--pushes 25] [--cron-pushes 20] [--cron 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from autorollout.kube import workload_path
from bench.env import BenchEnv, bench_env, log, save
from bench.proc import load_average
from bench.upstream import CLI, UPSTREAM_BIN, UPSTREAM_VERSION, Tool, _env
from tests.e2e.events_helpers import notification_endpoint
from tests.harness.oci import OCI_INDEX, OCI_MANIFEST
from tests.harness.registry import free_port

NAMESPACE = "bench-push"
APP = "pushed"
REPO = "bench/pushed"
DEFAULT_CRON = "*/45 * * * * *"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": statistics.median(values),
        "p99": _percentile(values, 0.99),
        "max": max(values),
        "min": min(values),
        "n": len(values),
    }


class Stage:
    """The benchmark environment with the Deployment that uses the pushed tag."""

    def __init__(self, env: BenchEnv, token: str, port: int) -> None:
        self.env = env
        self.token, self.port = token, port
        self.workdir = env.workdir
        (self.workdir / "events-token").write_text(token + "\n")
        self.image = f"{env.registry.host}/{REPO}:latest"
        self.seed = 1000
        # Upstream works in its client's default namespace: a kubeconfig whose context names it.
        self.kubeconfig = self.workdir / "push.kubeconfig"
        self.kubeconfig.write_text(env.cluster.kubeconfig.read_text())
        env.cluster.kubectl(
            "config",
            "set-context",
            "--current",
            f"--namespace={NAMESPACE}",
            f"--kubeconfig={self.kubeconfig}",
        )

    def push(self) -> float:
        self.seed += 1
        self.env.registry.push_image(REPO, "latest", seed=self.seed)
        return time.monotonic()

    def deploy(self) -> None:
        self.push()
        self.env.cluster.kubectl("create", "namespace", NAMESPACE)
        manifest = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": APP, "namespace": NAMESPACE, "labels": {"kube-autorollout/enabled": "true"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": APP}},
                "template": {
                    "metadata": {"labels": {"app": APP}},
                    "spec": {
                        "containers": [{"name": "app", "image": self.image, "imagePullPolicy": "Always"}]
                    },
                },
            },
        }
        self.env.cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        self.wait_new_replicaset(set(), time.monotonic() + 60)
        self.wait_pod_started(0, time.monotonic() + 120)

    def replicasets(self) -> set[str]:
        """The names of the Deployment's ReplicaSets (old ones are collected beyond its history limit)."""
        found = self.env.cluster.api_get(
            f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets?labelSelector=app%3D{APP}"
        )
        return {item["metadata"]["name"] for item in (found or {}).get("items", [])}

    def wait_new_replicaset(self, before: set[str], deadline: float) -> float:
        """When a ReplicaSet not in `before` exists."""
        while True:
            if self.replicasets() - before:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError("no new ReplicaSet within the deadline")
            time.sleep(0.01)

    def wait_pod_started(self, before: int, deadline: float) -> None:
        """Until the simulated node started a pod after `before` pods."""
        while self.env.kubelet.started_pods <= before:
            if time.monotonic() > deadline:
                raise TimeoutError("no new pod within the deadline")
            time.sleep(0.05)

    def floors(self, n: int = 10) -> dict[str, float]:
        """One HEAD of the tag; one template PATCH until its new ReplicaSet is seen (medians)."""
        url = f"{self.env.registry.url}/v2/{REPO}/manifests/latest"
        heads = []
        ca = str(self.env.registry.ca_file)
        with httpx.Client(trust_env=False, verify=ca) as client:
            for _ in range(50):
                t0 = time.perf_counter()
                client.head(
                    url, headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}", "User-Agent": "kar-test-harness"}
                )
                heads.append(time.perf_counter() - t0)
        return {
            "head_seconds": statistics.median(heads),
            "patch_to_replicaset_seconds": asyncio.run(self._patch_floor(n)),
        }

    async def _patch_floor(self, n: int) -> float:
        """Median seconds from sending a template PATCH (kept-alive connection) to its new ReplicaSet."""
        path = workload_path("Deployment", NAMESPACE, APP)
        times = []
        async with self.env.kube() as kube:
            await kube.get(path)  # the connection is open before the clock starts
            for i in range(n):
                before, started = self.replicasets(), self.env.kubelet.started_pods
                ops = [
                    {
                        "op": "add",
                        "path": "/spec/template/metadata/annotations",
                        "value": {"bench/floor": str(i)},
                    }
                ]
                t0 = time.monotonic()
                await kube.patch(path, ops)
                times.append(self.wait_new_replicaset(before, t0 + 30) - t0)
                self.wait_pod_started(started, t0 + 60)
        return statistics.median(times)

    def config(self, *, events: bool, cron: str) -> Path:
        """Upstream's config file format (ours reads it unchanged), plus our events section."""
        config: dict[str, Any] = {
            "cronSchedule": cron,
            "webserver": {"port": free_port()},
            "registries": [{"hostnamePattern": "127.0.0.1*", "secret": {"type": "None"}}],
            "tls": {"caCertificatePaths": [str(self.env.registry.ca_file)]},
        }
        if events:
            config["events"] = {
                "enabled": True,
                "host": "127.0.0.1",
                "port": self.port,
                "sources": {"distribution": {"secretFile": str(self.workdir / "events-token")}},
            }
        path = self.workdir / f"config-{'events' if events else 'cron'}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def start(self, tool: str, config: Path, name: str) -> Tool:
        """`kube-autorollout reconcile` (ours) or the upstream binary, until its first cycle ran."""
        env = {"CONFIG_FILE": str(config), "KUBECONFIG": str(self.kubeconfig)}
        if tool == "ours":
            argv = [CLI, "reconcile", "--kubeconfig", str(self.kubeconfig)]
            started, ready = Tool(name, argv, _env(env), self.workdir / f"{name}.log"), "reconciler started"
        else:
            env |= {"NO_COLOR": "1", "RUST_LOG": "info"}
            started = Tool(name, [str(UPSTREAM_BIN)], _env(env), self.workdir / f"{name}.log")
            ready = "kind=DaemonSet"  # its first cycle's last scan line
        deadline = time.monotonic() + 60
        while ready not in started.text():
            if time.monotonic() > deadline or started.popen.poll() is not None:
                started.stop()
                raise RuntimeError(started.text()[-2000:])
            time.sleep(0.1)
        return started


def _events_pushes(stage: Stage, pushes: int) -> list[float]:
    latencies = []
    for i in range(pushes):
        before, started = stage.replicasets(), stage.env.kubelet.started_pods
        pushed = stage.push()
        latencies.append(stage.wait_new_replicaset(before, pushed + 10) - pushed)
        stage.wait_pod_started(started, pushed + 60)
        log(f"events: push {i + 1}/{pushes}: new ReplicaSet after {latencies[-1]:.3f}s")
        time.sleep(random.uniform(0.2, 1.5))
    return latencies


def _cron_pushes(stage: Stage, name: str, offsets: list[float], cron: int) -> list[float]:
    latencies = []
    for i, offset in enumerate(offsets):
        time.sleep((offset - time.time() % cron) % cron)
        before, started = stage.replicasets(), stage.env.kubelet.started_pods
        pushed = stage.push()
        latencies.append(stage.wait_new_replicaset(before, pushed + cron * 4 + 30) - pushed)
        stage.wait_pod_started(started, pushed + 60)
        log(f"{name}: push {i + 1}/{len(offsets)} at +{offset:.2f}s: new RS after {latencies[-1]:.3f}s")
        time.sleep(0.5)  # the rollout's own follow-ups settle
    return latencies


def run(pushes: int, cron_pushes: int, cron: int, rounds: int) -> dict[str, Any]:
    token, port = secrets.token_urlsafe(24), free_port()
    endpoint = notification_endpoint("kube-autorollout", port, token)
    tools = ["ours", "upstream"] if UPSTREAM_BIN.exists() else ["ours"]
    with bench_env(kubelet_namespaces=(NAMESPACE,), notifications=[endpoint]) as env:
        stage = Stage(env, token, port)
        stage.deploy()
        result: dict[str, Any] = {
            "machine": env.facts,
            "cron_seconds": cron,
            "upstream_version": UPSTREAM_VERSION,
        }
        result["floors"] = stage.floors()
        values: dict[str, list[float]] = {"events": [], "cron": [], "upstream": []}
        loads: dict[str, list[float]] = {k: [] for k in values}
        per_round = -(-cron_pushes // rounds)
        for r in range(rounds):
            loads["events"].append(round(load_average(), 2))
            tool = stage.start("ours", stage.config(events=True, cron=DEFAULT_CRON), f"events-{r}")
            try:
                values["events"] += _events_pushes(stage, -(-pushes // rounds))
            finally:
                tool.stop()
            rng = random.Random(15 + r)
            offsets = [rng.uniform(0, cron) for _ in range(per_round)]
            for name in tools if r % 2 == 0 else tools[::-1]:
                mode = "cron" if name == "ours" else "upstream"
                loads[mode].append(round(load_average(), 2))
                tool = stage.start(
                    name, stage.config(events=False, cron=f"*/{cron} * * * * *"), f"{mode}-{r}"
                )
                try:
                    values[mode] += _cron_pushes(stage, mode, offsets, cron)
                finally:
                    tool.stop()
        for mode, found in values.items():
            if found:
                result[mode] = {**_summary(found), "values": found, "loads": loads[mode]}
        if "upstream" not in result:
            result["upstream"] = "not built (bench/install-upstream.sh)"
    return result


def push_table(data: dict[str, Any]) -> str:
    """The docs table of a `push-events` result."""
    floors = data["floors"]
    floor = floors["head_seconds"] + floors["patch_to_replicaset_seconds"]
    cron = data.get("cron_seconds", 45)

    def row(name: str, r: dict[str, Any] | str) -> str:
        if isinstance(r, str):
            return f"| {name} | {r} | | | | | |"
        loads = ", ".join(f"{x:g}" for x in r.get("loads", []))
        return (
            f"| {name} | {r['n']} | {r['p50']:.3f} s | {r['p99']:.3f} s | {r['max']:.3f} s "
            f"| {r['p50'] - floor:+.3f} s | {loads} |"
        )

    lines = [
        "| push → new ReplicaSet | pushes | p50 | p99 | max | p50 above the floor | 1-min load per round |",
        "|---|---|---|---|---|---|---|",
        row("ours, registry events (distribution notifications; cron `*/45`)", data["events"]),
        row(f"ours, cron alone (`*/{cron} * * * * *`, events off)", data["cron"]),
        row(
            f"upstream {data.get('upstream_version', '0.5.2')}, cron only (`*/{cron} * * * * *`)",
            data["upstream"],
        ),
        f"| floor: one HEAD ({floors['head_seconds'] * 1000:.1f} ms) + PATCH → new ReplicaSet "
        f"({floors['patch_to_replicaset_seconds'] * 1000:.0f} ms) "
        f"| | {floor:.3f} s | | | | |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=25, help="through events, in all rounds")
    parser.add_argument("--cron-pushes", type=int, default=20, help="per cron tool, in all rounds")
    parser.add_argument("--cron", type=int, default=5, help="the cron tools' schedule: every N seconds")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="push-events")
    args = parser.parse_args()
    result = run(args.pushes, args.cron_pushes, args.cron, args.rounds)
    save(args.out, result)
    print(push_table(result))


if __name__ == "__main__":
    main()
