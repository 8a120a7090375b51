"""The quick reconcile benchmark: 100 labeled Deployments over 20 unique images on the local control
plane and registry. It fails when a cycle costs more registry requests than there are unique images,
when a steady-state cycle LISTs, or when it patches anything but the workloads of moved tags.
(The full benchmark at 1,000 and 10,000 workloads is `make bench`; see docs/benchmarks.md.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from autorollout.cli.reconcile import open_reconciler
from autorollout.config import Config
from autorollout.kube import KubeClient
from bench.fleet import create_deployments, fleet_settled, move_tags, moved_workloads, push_images
from reconciler.act import Result
from reconciler.report import CycleReport
from tests.harness.cluster import LocalCluster
from tests.harness.registry import LocalRegistry

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

WORKLOADS = 100
UNIQUE_IMAGES = 20
MOVED_IMAGES = 1  # 5% of the tags
TTL = 1.0


def _registry_requests(registry: LocalRegistry, prefix: str) -> int:
    return registry.request_count(path_substring=f"/{prefix}-")


async def _wait_until(what: str, check: Callable[[], Awaitable[bool]], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def test_quick_reconcile_benchmark(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str
) -> None:
    prefix = f"{unique_repo}-img"
    images = push_images(registry, prefix, UNIQUE_IMAGES, seed=1)
    config = Config.model_validate(
        {
            "reconciler": {"namespaces": [namespace], "maxPatchesPerSecond": 1000},
            # Cycles here are TTL apart, so each one asks the registry, as cycles 45 s apart with
            # the default 10 s cache would.
            "digestCacheTtlSeconds": TTL,
        }
    )

    async def main() -> list[tuple[CycleReport, int]]:
        async with KubeClient.from_kubeconfig(str(cluster.kubeconfig)) as kube:
            await create_deployments(kube, namespace, images, 0, WORKLOADS)
            # Steady state means workloads that exist for a while: their controller is done with them.
            await _wait_until("the Deployments to settle", lambda: fleet_settled(kube, namespace, WORKLOADS))
        results: list[tuple[CycleReport, int]] = []
        async with open_reconciler(config, str(cluster.kubeconfig)) as reconciler:
            await reconciler.start(watch=True)
            assert len(reconciler.cache) == WORKLOADS

            async def cycle() -> None:
                await asyncio.sleep(TTL)
                before = _registry_requests(registry, prefix)
                report = await reconciler.cycle.run()
                results.append((report, _registry_requests(registry, prefix) - before))

            await cycle()  # first: everything recorded and current
            moved = move_tags(registry, images[:MOVED_IMAGES], seed=2)
            await cycle()  # the moved tags roll out
            moved_refs = {f"{m.reference}@{m.digest}" for m in moved}

            async def caught_up() -> bool:
                recorded = [
                    c for w in reconciler.cache.workloads() for c in w.recorded.values() if c in moved_refs
                ]
                return len(recorded) == moved_workloads(WORKLOADS, images, moved)

            await _wait_until("the watch-fed cache to see the rollouts", caught_up)
            await cycle()  # steady state again
        return results

    started = time.monotonic()
    results = asyncio.run(main())
    elapsed = time.monotonic() - started
    expected_rollouts = moved_workloads(WORKLOADS, images, images[:MOVED_IMAGES])
    for i, (report, registry_requests) in enumerate(results):
        print(
            f"cycle {i}: {report.duration * 1000:.0f} ms, registry requests {registry_requests},"
            f" API {report.api_requests}"
        )
        assert report.workloads == WORKLOADS
        assert report.unique_images == UNIQUE_IMAGES
        assert not report.registry_errors
        assert registry_requests <= report.unique_images, f"cycle {i}: {registry_requests} registry requests"
        assert "GET" not in report.api_requests, f"cycle {i} read from the API: {report.api_requests}"
    first, moved, steady = (r for r, _ in results)
    assert first.api_requests == {}
    moved_refs = {m.reference for m in images[:MOVED_IMAGES]}
    assert moved.count(Result.ROLLED_OUT) == expected_rollouts == len(moved.outcomes)
    assert all(c.image in moved_refs for o in moved.outcomes for c in o.plan.workload.containers)
    # A rejected guard (the controller wrote status meanwhile) costs a retry of the same patch.
    assert moved.api_requests.get("PATCH") == sum(o.attempts for o in moved.outcomes)
    assert steady.api_requests == {}
    assert elapsed < 60
