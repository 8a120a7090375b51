"""Push to new ReplicaSet: through registry events (Debian's docker-registry notifying the receiver)
and with cron alone, both at the default schedule (`*/45 * * * * *`), in one run on one cluster.

Per push: the time from the end of the tag's manifest PUT (when the registry emits its notification)
to the moment the Deployment's new ReplicaSet exists in the API (polled every 10 ms). The floor is
what no product can skip: one HEAD of the tag at the registry, plus a PATCH of the pod template and
the controller's reaction to it (measured by patching the template directly and waiting for the new
ReplicaSet the same way). Notification delivery and our coalescing window (`coalesceSeconds`, 0.1 s
by default) are the gap above it, with the cycle's own work.

The upstream Rust binary polls only (no events); when it is built (bench/install-upstream.sh) its
push latency is `python -m bench.upstream`'s "push to first new ReplicaSet" row, at its schedule.

Usage: python -m bench.push_events [--pushes 25] [--cron-pushes 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from autorollout.kube import KubeClient, workload_path
from bench.env import log, save
from bench.proc import load_average, machine
from tests.e2e.events_helpers import notification_endpoint
from tests.harness.cluster import LocalCluster
from tests.harness.oci import OCI_INDEX, OCI_MANIFEST
from tests.harness.registry import LocalRegistry, free_port, start_registry

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench-push"
APP = "pushed"
REPO = "bench/pushed"
DEFAULT_CRON = "*/45 * * * * *"
UPSTREAM_BIN = Path.home() / ".cache/kube-autorollout/upstream-0.5.2/bin/kube-autorollout"


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
    """The cluster and a notifying registry, with the Deployment that uses the pushed tag."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.token = secrets.token_urlsafe(24)
        self.port = free_port()
        (workdir / "events-token").write_text(self.token + "\n")
        self.cluster = LocalCluster().start()
        endpoint = notification_endpoint("kube-autorollout", self.port, self.token)
        self.registry: LocalRegistry = start_registry("plain", workdir / "registry", notifications=[endpoint])
        self.image = f"{self.registry.host}/{REPO}:latest"
        self.seed = 1000

    def push(self) -> tuple[str, float]:
        self.seed += 1
        digest = self.registry.push_image(REPO, "latest", seed=self.seed)
        return digest, time.monotonic()

    def deploy(self) -> None:
        digest, _ = self.push()
        self.cluster.kubectl("create", "namespace", NAMESPACE)
        manifest = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": APP,
                "namespace": NAMESPACE,
                "labels": {"kube-autorollout/enabled": "true"},
                "annotations": {"digest.kube-autorollout/app": f"{self.image}@{digest}"},
            },
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": APP}},
                "template": {
                    "metadata": {"labels": {"app": APP}},
                    "spec": {
                        "containers": [{"name": "app", "image": self.image, "imagePullPolicy": "Always"}]
                    },
                },
            },
        }
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        self.wait_new_replicaset(set(), time.monotonic() + 30)

    def replicasets(self) -> set[str]:
        """The names of the Deployment's ReplicaSets (old ones are collected beyond its history limit)."""
        found = self.cluster.api_get(
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

    def floors(self, n: int = 10) -> dict[str, float]:
        """One HEAD of the tag; one template PATCH until its new ReplicaSet is seen (medians)."""
        url = f"{self.registry.url}/v2/{REPO}/manifests/latest"
        heads = []
        with httpx.Client(trust_env=False) as client:
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
        async with KubeClient.from_kubeconfig(str(self.cluster.kubeconfig)) as kube:
            await kube.get(path)  # the connection is open before the clock starts
            for i in range(n):
                before = self.replicasets()
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
        return statistics.median(times)

    def stop(self) -> None:
        self.registry.stop()
        self.cluster.stop()


def _config(stage: Stage, *, events: bool) -> Path:
    config: dict[str, Any] = {
        "cronSchedule": DEFAULT_CRON,
        "webserver": {"port": 0},
        "reconciler": {"namespaces": [NAMESPACE]},
    }
    if events:
        config["events"] = {
            "enabled": True,
            "host": "127.0.0.1",
            "port": stage.port,
            "sources": {"distribution": {"secretFile": str(stage.workdir / "events-token")}},
        }
    path = stage.workdir / f"config-{'events' if events else 'cron'}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start(stage: Stage, config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k != "CONFIG_FILE"}
    argv = [sys.executable, "-m", "autorollout.cli.main", "reconcile", "--config", str(config),
            "--kubeconfig", str(stage.cluster.kubeconfig)]  # fmt: skip
    with log_path.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while b"reconciler started" not in log_path.read_bytes():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(log_path.read_text()[-2000:])
        time.sleep(0.1)
    return process


def _measure(stage: Stage, pushes: int, *, timeout: float, spread: float) -> list[float]:
    latencies = []
    for i in range(pushes):
        before = stage.replicasets()
        _, pushed = stage.push()
        seen = stage.wait_new_replicaset(before, pushed + timeout)
        latencies.append(seen - pushed)
        log(f"push {i + 1}/{pushes}: new ReplicaSet after {latencies[-1]:.3f}s")
        time.sleep(random.uniform(0.2, spread))  # pushes land at different points of the schedule
    return latencies


def run(pushes: int, cron_pushes: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="kar-bench-push-"))
    log("starting the local control plane and a notifying registry")
    stage = Stage(workdir)
    result: dict[str, Any] = {"machine": {**machine(), "load_at_start": round(load_average(), 2)}}
    try:
        stage.deploy()
        result["floors"] = stage.floors()
        for mode, count, timeout, spread in (
            ("events", pushes, 10.0, 1.5),
            ("cron", cron_pushes, 60.0, 20.0),
        ):
            process = _start(stage, _config(stage, events=mode == "events"), workdir / f"{mode}.log")
            try:
                time.sleep(1.0)
                log(f"{mode}: {count} pushes")
                values = _measure(stage, count, timeout=timeout, spread=spread)
            finally:
                process.terminate()
                process.wait(timeout=20)
            result[mode] = {**_summary(values), "values": values, "load_after": round(load_average(), 2)}
        result["upstream"] = "built" if UPSTREAM_BIN.exists() else "not built (bench/install-upstream.sh)"
    finally:
        stage.stop()
    return result


def push_table(data: dict[str, Any]) -> str:
    """The docs table of a `push` result."""
    floors = data["floors"]
    floor = floors["head_seconds"] + floors["patch_to_replicaset_seconds"]

    def row(name: str, r: dict[str, Any]) -> str:
        return (
            f"| {name} | {r['n']} | {r['p50']:.3f} s | {r['p99']:.3f} s | {r['max']:.3f} s "
            f"| {r['p50'] - floor:+.3f} s |"
        )

    lines = [
        "| push → new ReplicaSet, cron `*/45 * * * * *` | pushes | p50 | p99 | max | p50 above the floor |",
        "|---|---|---|---|---|---|",
        row("registry events (distribution notifications)", data["events"]),
        row("cron alone (same process, events off)", data["cron"]),
        f"| floor: one HEAD ({floors['head_seconds'] * 1000:.1f} ms) + PATCH → new ReplicaSet "
        f"({floors['patch_to_replicaset_seconds'] * 1000:.0f} ms) "
        f"| | {floor:.3f} s | | | |",
        f"| upstream 0.5.2 (cron only) | {data['upstream']} | | | | |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=25)
    parser.add_argument("--cron-pushes", type=int, default=5)
    args = parser.parse_args()
    result = run(args.pushes, args.cron_pushes)
    save("push-events", result)
    print(push_table(result))


if __name__ == "__main__":
    main()
