"""The rollouts of one cycle go out concurrently, still paced by the patch rate limit, each exactly
once with its one Event, against the local control plane and registry."""

from __future__ import annotations

import asyncio
import time

import pytest

from reconciler.act import Result
from reconciler.cycle import MAX_CONCURRENT_PATCHES
from reconciler.plan import WorkloadPlan
from reconciler.reconciler import Reconciler
from reconciler.report import CycleReport
from tests.e2e.reconciler_helpers import (
    DIGEST_PREFIX,
    apply,
    config_for,
    events,
    with_reconciler,
    workload,
)
from tests.e2e.webhook_process import get
from tests.harness.cluster import LocalCluster
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e

WORKLOADS = 24


def _fleet(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, repo: str, n: int
) -> tuple[str, str]:
    image = f"{registry.host}/{repo}:latest"
    old = registry.push_image(repo, "latest", seed=31)
    for i in range(n):
        apply(cluster, workload("Deployment", f"w{i}", namespace, [("app", image)], recorded={"app": old}))
    return image, registry.push_image(repo, "latest", seed=32)


def test_rollouts_of_one_cycle_are_in_flight_together_and_each_happens_once(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str
) -> None:
    image, new = _fleet(cluster, registry, namespace, unique_repo, WORKLOADS)
    in_flight = 0
    most = 0

    async def before_act(plan: WorkloadPlan) -> None:
        # Called for each plan just before it is acted on: with acting one after another, never two.
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1

    async def cycle(r: Reconciler) -> CycleReport:
        r.cycle.before_act = before_act
        return await r.cycle.run()

    config = config_for(namespace, reconciler={"namespaces": [namespace], "maxPatchesPerSecond": 1000})
    report: CycleReport = with_reconciler(cluster, config, cycle)

    assert most == min(WORKLOADS, MAX_CONCURRENT_PATCHES)
    assert [o.result for o in report.outcomes] == [Result.ROLLED_OUT] * WORKLOADS
    assert report.api_requests.get("PATCH") == WORKLOADS
    assert report.api_requests.get("POST") == WORKLOADS  # the Events, all written before run() returned
    rolled = events(cluster, namespace, "RolloutTriggered")
    assert sorted(e["involvedObject"]["name"] for e in rolled) == sorted(f"w{i}" for i in range(WORKLOADS))
    for i in range(WORKLOADS):
        annotations = get(cluster, "Deployment", namespace, f"w{i}")["metadata"]["annotations"]
        assert annotations[f"{DIGEST_PREFIX}app"] == f"{image}@{new}"

    again: CycleReport = with_reconciler(cluster, config, lambda r: r.cycle.run())
    assert again.api_requests.get("PATCH") is None  # exactly once: the next cycle finds them up to date
    assert len(events(cluster, namespace, "RolloutTriggered")) == WORKLOADS


def test_concurrent_rollouts_still_keep_to_the_patch_rate_limit(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str
) -> None:
    rate, n = 5.0, 6
    _fleet(cluster, registry, namespace, unique_repo, n)
    sent: list[float] = []

    async def before_act(plan: WorkloadPlan) -> None:
        sent.append(time.monotonic())

    async def cycle(r: Reconciler) -> CycleReport:
        r.cycle.before_act = before_act
        started = time.monotonic()
        report = await r.cycle.run()
        sent.append(time.monotonic() - started)
        return report

    config = config_for(namespace, reconciler={"namespaces": [namespace], "maxPatchesPerSecond": rate})
    report: CycleReport = with_reconciler(cluster, config, cycle)

    assert [o.result for o in report.outcomes] == [Result.ROLLED_OUT] * n
    assert len(sent) == n + 1  # every plan was started at once ...
    # ... but one token per 1/rate seconds (burst 1): n patches need at least (n - 1) / rate seconds
    assert sent[-1] >= (n - 1) / rate
