"""The benchmark environment: local control plane, TLS registry, simulated node, and the floors
(one HEAD round trip to the registry, one PATCH round trip to the API server) measured in it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import platform
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from autorollout.kube import KubeClient, core_collection
from autorollout.kube.paths import workload_path
from bench.fleet import Image, create_deployments, create_namespace, fleet_settled
from bench.proc import load_average, machine
from tests.harness.cluster import LocalCluster
from tests.harness.kubelet import SimulatedKubelet, head_digest
from tests.harness.registry import LocalRegistry, start_registry

RESULTS = Path(__file__).resolve().parent / "results"
ACCEPT = (
    "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
)


def log(message: str) -> None:
    print(
        f"[bench {time.strftime('%H:%M:%S')} load {load_average():.2f}] {message}",
        file=sys.stderr,
        flush=True,
    )


@dataclass
class BenchEnv:
    cluster: LocalCluster
    registry: LocalRegistry
    kubelet: SimulatedKubelet
    workdir: Path
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> str:
        return str(self.cluster.kubeconfig)

    def our_registry_requests(self) -> int:
        """Requests our product sent to the registry (by its User-Agent), from the access log."""
        return self.registry.request_count(user_agent_substring="kube-autorollout/")

    def kube(self) -> KubeClient:
        return KubeClient.from_kubeconfig(self.kubeconfig)

    def fleet(
        self,
        namespace: str,
        images: list[Image],
        start: int,
        stop: int,
        *,
        replicas: int = 0,
        extra_annotations: Mapping[str, str] | None = None,
        settle_timeout: float = 600,
    ) -> float:
        """Create Deployments start..stop-1 in `namespace` and wait until their controller settled them."""

        async def go() -> float:
            async with self.kube() as kube:
                await create_namespace(kube, namespace)
                began = time.monotonic()
                await create_deployments(
                    kube,
                    namespace,
                    images,
                    start,
                    stop,
                    replicas=replicas,
                    extra_annotations=extra_annotations,
                )
                created = time.monotonic() - began
                deadline = time.monotonic() + settle_timeout
                while not await fleet_settled(kube, namespace, stop):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{namespace}: Deployments did not settle")
                    await asyncio.sleep(2.0)
                return created

        return asyncio.run(go())

    def head_floor(self, image: Image, n: int = 200) -> float:
        """Median seconds of one HEAD of a manifest over a kept-alive TLS connection."""
        url = f"{self.registry.url}/v2/{image.repository}/manifests/{image.tag}"
        with httpx.Client(verify=self.registry.verify, trust_env=False) as client:
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                client.head(url, headers={"Accept": ACCEPT, "User-Agent": "kar-test-harness"})
                times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def patch_floor(self, namespace: str, name: str, n: int = 50) -> float:
        """Median seconds of one JSON-patch round trip (an annotation) to a Deployment."""

        async def go() -> float:
            async with self.kube() as kube:
                path = workload_path("Deployment", namespace, name)
                times = []
                for i in range(n):
                    ops = [{"op": "add", "path": "/metadata/annotations/bench~1floor", "value": str(i)}]
                    t0 = time.perf_counter()
                    await kube.patch(path, ops)
                    times.append(time.perf_counter() - t0)
                return statistics.median(times)

        return asyncio.run(go())

    def rollout_floor(self, namespace: str, names: list[str], round_: int) -> float:
        """Seconds to send, one after another, what a rollout of each of `names` must send: a JSON
        patch of its pod template (the controller makes a new ReplicaSet) and one Event."""

        async def go() -> float:
            async with self.kube() as kube:
                await kube.get(workload_path("Deployment", namespace, names[0]))  # connection open
                t0 = time.perf_counter()
                for name in names:
                    path = workload_path("Deployment", namespace, name)
                    ops = [
                        {
                            "op": "add",
                            "path": "/spec/template/metadata/annotations",
                            "value": {"bench/floor": str(round_)},
                        }
                    ]
                    await kube.patch(path, ops)
                    event = {
                        "metadata": {"name": f"{name}.floor-{round_}", "namespace": namespace},
                        "involvedObject": {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "namespace": namespace,
                            "name": name,
                        },
                        "type": "Normal",
                        "reason": "BenchFloor",
                        "message": "the floor of a rollout",
                        "source": {"component": "kar-bench"},
                    }
                    await kube.create(core_collection("events", namespace), event)
                return time.perf_counter() - t0

        return asyncio.run(go())


@contextlib.contextmanager
def bench_env(
    kubelet_namespaces: tuple[str, ...] = (), notifications: Sequence[Mapping[str, object]] = ()
) -> Iterator[BenchEnv]:
    """Start the control plane, a TLS registry (sending `notifications`, distribution's endpoint
    entries) and the simulated node; stop them afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="kar-bench-"))
    log("starting the local control plane and a TLS registry")
    cluster = LocalCluster().start()
    registry = start_registry("tls", workdir / "registry", notifications=notifications)
    assert registry.ca_file is not None
    verify = ssl.create_default_context(cafile=str(registry.ca_file))
    resolve = functools.partial(head_digest, scheme="https", verify=verify)
    kubelet = SimulatedKubelet(
        cluster.kubeconfig, namespaces=kubelet_namespaces, resolve=resolve, interval=0.5
    )
    kubelet.start()
    env = BenchEnv(cluster, registry, kubelet, workdir)
    env.facts = {
        **machine(),
        "python": platform.python_version(),
        "kubernetes": str((cluster.api_get("/version") or {}).get("gitVersion", cluster.server_version)),
        "load_at_start": round(load_average(), 2),
    }
    try:
        yield env
    finally:
        kubelet.stop()
        registry.stop()
        cluster.stop()


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    log(f"wrote {path}")
    return path
