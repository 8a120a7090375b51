"""The reconcile cycle driven in-process where a test needs fine control: request counts, a concurrent
edit between plan and act, the watch-fed cache, and pods whose status says what they run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from autorollout.references import parse_image_reference
from reconciler.act import Result
from reconciler.plan import WorkloadPlan
from reconciler.reconciler import Reconciler
from reconciler.report import CycleReport
from tests.e2e.reconciler_helpers import (
    DIGEST_PREFIX,
    RESTARTED_AT,
    apply,
    config_for,
    events,
    make_pods_run,
    wait_replicasets,
    with_reconciler,
    workload,
)
from tests.e2e.webhook_process import get
from tests.harness.cluster import LocalCluster
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e


def test_one_moved_image_of_several_containers_is_one_patch(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str
) -> None:
    app, side, init = (f"{registry.host}/{unique_repo}-{n}:latest" for n in ("app", "side", "init"))
    digests = {
        "app": registry.push_image(f"{unique_repo}-app", "latest", seed=1),
        "side": registry.push_image(f"{unique_repo}-side", "latest", seed=2),
        "init": registry.push_image(f"{unique_repo}-init", "latest", seed=3),
    }
    apply(
        cluster,
        workload(
            "Deployment",
            "multi",
            namespace,
            [("app", app), ("side", side)],
            init_containers=[("init", init)],
            recorded=digests,
        ),
    )
    wait_replicasets(cluster, namespace, "multi", 1)
    moved = registry.push_image(f"{unique_repo}-side", "latest", seed=4)
    head_before = registry.request_count("HEAD", "/manifests/")

    report: CycleReport = with_reconciler(cluster, config_for(namespace), lambda r: r.cycle.run())

    assert report.api_requests.get("PATCH") == 1
    assert report.unique_images == 3
    assert registry.request_count("HEAD", "/manifests/") - head_before == 3  # one per unique image
    assert [o.result for o in report.outcomes] == [Result.ROLLED_OUT]
    annotations = get(cluster, "Deployment", namespace, "multi")["metadata"]["annotations"]
    assert annotations[f"{DIGEST_PREFIX}side"] == f"{side}@{moved}"
    assert annotations[f"{DIGEST_PREFIX}app"] == f"{app}@{digests['app']}"
    assert annotations[f"{DIGEST_PREFIX}init"] == f"{init}@{digests['init']}"
    [event] = events(cluster, namespace, "RolloutTriggered")
    assert event["message"] == f"container side: {digests['side']} -> {moved} ({side})"
    wait_replicasets(cluster, namespace, "multi", 2)


def test_shared_images_are_resolved_once_per_cycle(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str
) -> None:
    a, b = f"{registry.host}/{unique_repo}-a:latest", f"{registry.host}/{unique_repo}-b:latest"
    da = registry.push_image(f"{unique_repo}-a", "latest", seed=5)
    db = registry.push_image(f"{unique_repo}-b", "latest", seed=6)
    for i in range(6):
        containers = [("one", a), ("two", b)] if i % 2 else [("one", a)]
        recorded = {"one": da, "two": db}
        apply(cluster, workload("Deployment", f"w{i}", namespace, containers, recorded=recorded))
    before = registry.request_count(path_substring="/manifests/")

    report: CycleReport = with_reconciler(cluster, config_for(namespace), lambda r: r.cycle.run())

    assert report.workloads == 6
    assert report.unique_images == 2
    assert registry.request_count(path_substring="/manifests/") - before == 2
    assert report.outcomes == []


def test_a_cycle_limited_to_one_image_looks_up_and_acts_only_on_the_workloads_using_it(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str
) -> None:
    # What a registry event will drive: `Cycle.run(images=...)` for the image that moved.
    a, b = f"{registry.host}/{unique_repo}-a:latest", f"{registry.host}/{unique_repo}-b:latest"
    va = registry.push_image(f"{unique_repo}-a", "latest", seed=21)
    vb = registry.push_image(f"{unique_repo}-b", "latest", seed=22)
    apply(cluster, workload("Deployment", "on-a", namespace, [("app", a)], recorded={"app": va}))
    apply(cluster, workload("Deployment", "on-b", namespace, [("app", b)], recorded={"app": vb}))
    va2 = registry.push_image(f"{unique_repo}-a", "latest", seed=23)
    vb2 = registry.push_image(f"{unique_repo}-b", "latest", seed=24)
    heads_a = registry.request_count("HEAD", f"/{unique_repo}-a/manifests/")
    heads_b = registry.request_count("HEAD", f"/{unique_repo}-b/manifests/")

    async def scoped_then_full(r: Reconciler) -> tuple[CycleReport, CycleReport]:
        scoped = await r.cycle.run(images=[parse_image_reference(a)])
        await _until(lambda: any(va2 in v for w in r.cache.workloads() for v in w.recorded.values()))
        return scoped, await r.cycle.run()

    scoped, full = with_reconciler(cluster, config_for(namespace), scoped_then_full, watch=True)

    assert (scoped.workloads, scoped.unique_images) == (1, 1)
    assert [(o.plan.workload.name, o.result) for o in scoped.outcomes] == [("on-a", Result.ROLLED_OUT)]
    assert scoped.api_requests.get("PATCH") == 1
    # The full cycle after it: both images looked up once more, only "on-b" still to roll out.
    assert registry.request_count("HEAD", f"/{unique_repo}-a/manifests/") - heads_a == 2
    assert registry.request_count("HEAD", f"/{unique_repo}-b/manifests/") - heads_b == 1
    assert [(o.plan.workload.name, o.result) for o in full.outcomes] == [("on-b", Result.ROLLED_OUT)]
    assert get(cluster, "Deployment", namespace, "on-a")["metadata"]["annotations"][
        f"{DIGEST_PREFIX}app"
    ] == (f"{a}@{va2}")
    assert get(cluster, "Deployment", namespace, "on-b")["metadata"]["annotations"][
        f"{DIGEST_PREFIX}app"
    ] == (f"{b}@{vb2}")
    assert len(events(cluster, namespace, "RolloutTriggered")) == 2


def test_concurrent_edit_between_plan_and_act_is_not_lost(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=7)
    apply(cluster, workload("Deployment", "busy", namespace, [("app", image)], recorded={"app": v1}))
    v2 = registry.push_image(unique_repo, "latest", seed=8)
    edits: list[str] = []

    async def edit(plan: WorkloadPlan) -> None:
        # Someone else writes the workload after it was planned and before its patch is sent.
        if not edits:
            edits.append(plan.workload.resource_version)
            change = {"metadata": {"labels": {"edited": "yes"}, "annotations": {"team": "blue"}}}
            cluster.kubectl(
                "patch", "deployment", "busy", "-n", namespace, "--type=merge", "-p", json.dumps(change)
            )

    config = config_for(namespace)

    async def cycle(r: Reconciler) -> CycleReport:
        r.cycle.before_act = edit
        return await r.cycle.run()

    report: CycleReport = with_reconciler(cluster, config, cycle)

    [outcome] = report.outcomes
    assert outcome.result is Result.ROLLED_OUT
    # The test op rejected the first patch; re-read, re-planned, patched (a controller's status write
    # right after the edit may cost one more round).
    assert outcome.attempts >= 2
    assert report.api_requests.get("PATCH") == outcome.attempts
    deployment = get(cluster, "Deployment", namespace, "busy")
    assert deployment["metadata"]["labels"]["edited"] == "yes"  # the concurrent edit survived
    assert deployment["metadata"]["annotations"]["team"] == "blue"
    assert deployment["metadata"]["annotations"][f"{DIGEST_PREFIX}app"] == f"{image}@{v2}"
    assert RESTARTED_AT in deployment["spec"]["template"]["metadata"]["annotations"]
    assert len(events(cluster, namespace, "RolloutTriggered")) == 1
    wait_replicasets(cluster, namespace, "busy", 2)


def test_concurrent_rollout_by_someone_else_is_not_repeated(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=9)
    apply(cluster, workload("Deployment", "raced", namespace, [("app", image)], recorded={"app": v1}))
    v2 = registry.push_image(unique_repo, "latest", seed=10)

    async def other_replica_wins(plan: WorkloadPlan) -> None:
        # Another replica (or a stale leader) rolled out the same new digest in the meantime.
        patch = {
            "metadata": {"annotations": {f"{DIGEST_PREFIX}app": f"{image}@{v2}"}},
            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2025-01-01T00:00:00Z"}}}},
        }
        body = json.dumps(patch)
        cluster.kubectl("patch", "deployment", "raced", "-n", namespace, "--type=merge", "-p", body)

    async def cycle(r: Reconciler) -> CycleReport:
        r.cycle.before_act = other_replica_wins
        return await r.cycle.run()

    report: CycleReport = with_reconciler(cluster, config_for(namespace), cycle)

    [outcome] = report.outcomes
    assert outcome.result is Result.NOTHING  # re-planned on the fresh object: already up to date
    template = get(cluster, "Deployment", namespace, "raced")["spec"]["template"]["metadata"]["annotations"]
    assert template[RESTARTED_AT] == "2025-01-01T00:00:00Z"
    assert events(cluster, namespace, "RolloutTriggered") == []
    wait_replicasets(cluster, namespace, "raced", 2)


def test_watch_fed_cache_needs_no_api_requests_in_a_steady_cycle(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=11)
    apply(cluster, workload("Deployment", "first", namespace, [("app", image)], recorded={"app": v1}))

    async def scenario(r: Reconciler) -> list[CycleReport]:
        reports = [await r.cycle.run()]
        # Created after the start: it arrives through the watch, not a LIST.
        late = workload("StatefulSet", "late", namespace, [("app", image)], replicas=0)
        await asyncio.to_thread(apply, cluster, late)
        await _until(lambda: len(r.cache) == 2)
        reports.append(await r.cycle.run())  # adopts "late" (scaled to zero: no pod to ask)
        await _until(lambda: all(w.recorded for w in r.cache.workloads()))
        reports.append(await r.cycle.run())  # steady state
        # Unlabeling removes a workload from scope (the watch reports it as deleted).
        await asyncio.to_thread(
            cluster.kubectl, "label", "statefulset", "late", "-n", namespace, "kube-autorollout/enabled-"
        )
        await _until(lambda: len(r.cache) == 1)
        reports.append(await r.cycle.run())
        return reports

    reports: list[CycleReport] = with_reconciler(cluster, config_for(namespace), scenario, watch=True)

    assert [r.workloads for r in reports] == [1, 2, 2, 1]
    assert [o.result for o in reports[1].outcomes] == [Result.ADOPTED]
    assert reports[2].api_requests == {}  # steady state: no LIST, no GET, nothing; the cache answered
    assert reports[3].api_requests == {}


async def _until(check: Callable[[], bool]) -> None:
    """Poll the cache (filled by watch events on the same loop) until `check` holds, 20 s at most."""
    async with asyncio.timeout(20.0):
        while not check():  # noqa: ASYNC110 - the condition lives in plain data, no event to wait on
            await asyncio.sleep(0.05)


def test_adoption_rolls_out_when_the_pods_run_an_older_digest(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1, _ = registry.push_index(unique_repo, "latest", seed=12)
    apply(cluster, workload("Deployment", "stale", namespace, [("app", image)]))  # nothing recorded
    make_pods_run(cluster, namespace, "stale", f"{image.rsplit(':', 1)[0]}@{v1}")
    v2, _ = registry.push_index(unique_repo, "latest", seed=13)

    report: CycleReport = with_reconciler(cluster, config_for(namespace), lambda r: r.cycle.run())

    assert [o.result for o in report.outcomes] == [Result.ROLLED_OUT]
    annotations = get(cluster, "Deployment", namespace, "stale")["metadata"]["annotations"]
    assert annotations[f"{DIGEST_PREFIX}app"] == f"{image}@{v2}"
    [event] = events(cluster, namespace, "RolloutTriggered")
    assert f"{v1} -> {v2}" in event["message"]
    wait_replicasets(cluster, namespace, "stale", 2)


def test_adoption_without_rollout_when_pods_run_a_platform_digest_of_the_index(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    index, platforms = registry.push_index(unique_repo, "latest", seed=14)
    apply(cluster, workload("Deployment", "current", namespace, [("app", image)]))
    running = next(iter(platforms.values()))
    make_pods_run(cluster, namespace, "current", f"docker-pullable://{image.rsplit(':', 1)[0]}@{running}")

    report: CycleReport = with_reconciler(cluster, config_for(namespace), lambda r: r.cycle.run())

    assert [o.result for o in report.outcomes] == [Result.ADOPTED]
    annotations = get(cluster, "Deployment", namespace, "current")["metadata"]["annotations"]
    assert annotations[f"{DIGEST_PREFIX}app"] == f"{image}@{index}"  # the index digest is recorded
    assert events(cluster, namespace, "RolloutTriggered") == []
    wait_replicasets(cluster, namespace, "current", 1)


def test_paused_deployment_is_skipped(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=15)
    manifest = workload("Deployment", "held", namespace, [("app", image)], recorded={"app": v1})
    manifest["spec"]["paused"] = True
    apply(cluster, manifest)
    registry.push_image(unique_repo, "latest", seed=16)

    report: CycleReport = with_reconciler(cluster, config_for(namespace), lambda r: r.cycle.run())

    [plan] = report.plans
    assert plan.skipped == "Deployment is paused"
    assert report.outcomes == []
    assert report.api_requests == {}


def test_registry_errors_warn_once_per_workload_and_image_not_every_cycle(
    cluster: LocalCluster,
    registry_factory,  # type: ignore[no-untyped-def]
    namespace: str,
    unique_repo: str,
) -> None:
    own: LocalRegistry = registry_factory("plain")
    image = f"{own.host}/{unique_repo}:latest"
    v1 = own.push_image(unique_repo, "latest", seed=18)
    for name in ("one", "two"):
        apply(cluster, workload("Deployment", name, namespace, [("app", image)], recorded={"app": v1}))
    own.stop()

    async def cycles(r: Reconciler) -> list[CycleReport]:
        return [await r.cycle.run(), await r.cycle.run()]

    reports: list[CycleReport] = with_reconciler(cluster, config_for(namespace), cycles)

    assert [list(r.registry_errors) for r in reports] == [[image], [image]]
    assert all(r.outcomes == [] for r in reports)  # never a rollout on an error
    warnings = events(cluster, namespace, "RegistryLookupFailed")
    assert sorted(e["involvedObject"]["name"] for e in warnings) == ["one", "two"]  # not again in cycle 2
    assert reports[1].api_requests == {}
