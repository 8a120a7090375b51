"""Adoption (a labeled workload with no recorded digest) against the real control plane: only the
workload's own Ready pods say what runs, nothing is recorded while none can, and a workload scaled
to zero is adopted at the registry's digest."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.act import Result
from reconciler.plan import Adoption, ContainerState, Rollout
from reconciler.reconciler import Reconciler
from reconciler.report import CycleReport
from tests.e2e.real_node_helpers import ROLLOUT_TIMEOUT
from tests.e2e.reconciler_helpers import (
    DIGEST_PREFIX,
    apply,
    config_for,
    events,
    list_items,
    make_pods_run,
    run_cli,
    running_image_ids,
    wait_for,
    wait_replicasets,
    with_reconciler,
    workload,
    write_config,
)
from tests.e2e.webhook_process import get
from tests.harness.cluster import LocalCluster
from tests.harness.kubelet import image_id
from tests.harness.node import LocalNode
from tests.harness.podimages import push_runnable
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e


def _shared_selector(manifest: dict[str, Any], owner: str) -> dict[str, Any]:
    """Select `app=shared` only (mine) or `app=shared,owner=...` (the stranger): selectors overlap."""
    spec = manifest["spec"]
    labels = {"app": "shared", "owner": owner}
    spec["template"]["metadata"]["labels"] = labels
    spec["selector"] = {"matchLabels": {"app": "shared"} if owner == "mine" else labels}
    return manifest


def _running_pods(cluster: LocalCluster, namespace: str, owner: str) -> list[dict[str, Any]]:
    pods = list_items(cluster, "pods", namespace, f"owner={owner}")
    ready = [
        p
        for p in pods
        if p["status"].get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
        and any(s.get("imageID") for s in p["status"].get("containerStatuses") or ())
    ]
    return ready if ready and len(ready) == len(pods) else []


def _observed(cluster: LocalCluster, namespace: str, kind: str, name: str) -> bool:
    obj = get(cluster, kind, namespace, name)
    return bool(obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"])


def _cycle(cluster: LocalCluster, namespace: str) -> CycleReport:
    async def body(r: Reconciler) -> CycleReport:
        return await r.cycle.run()

    report: CycleReport = with_reconciler(cluster, config_for(namespace), body)
    return report


def test_a_strangers_newer_pod_under_an_overlapping_selector_is_never_adopted_from(
    cluster: LocalCluster, registry: LocalRegistry, node_namespace: str, node: LocalNode, unique_repo: str
) -> None:
    ns = node_namespace
    node.trust_registry(registry)
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = push_runnable(registry, unique_repo, "latest", seed=101)
    v2 = push_runnable(registry, unique_repo, "latest", seed=102)
    apply(cluster, _shared_selector(workload("Deployment", "mine", ns, [("app", image)]), "mine"))
    [mine] = wait_for("my pod running", lambda: _running_pods(cluster, ns, "mine"), ROLLOUT_TIMEOUT)
    assert mine["status"]["containerStatuses"][0]["imageID"] == image_id(image, v2)
    time.sleep(1.1)  # creationTimestamp has one-second resolution: the stranger's pod is strictly newer
    # Not ours (no opt-in label), its pods match our selector, run the same container name on v1.
    pinned = f"{registry.host}/{unique_repo}@{v1}"
    stranger = workload("Deployment", "stranger", ns, [("app", pinned)], labeled=False)
    apply(cluster, _shared_selector(stranger, "stranger"))
    [theirs] = wait_for(
        "the stranger's pod running", lambda: _running_pods(cluster, ns, "stranger"), ROLLOUT_TIMEOUT
    )
    assert theirs["metadata"]["creationTimestamp"] > mine["metadata"]["creationTimestamp"]
    assert theirs["status"]["containerStatuses"][0]["imageID"] == image_id(pinned, v1)

    report = _cycle(cluster, ns)

    [plan] = report.plans
    assert isinstance(plan.action, Adoption), plan.verdicts  # not a rollout "from v1"
    assert plan.verdicts[0].running == v2
    assert [o.result for o in report.outcomes] == [Result.ADOPTED]
    assert get(cluster, "Deployment", ns, "mine")["metadata"]["annotations"][f"{DIGEST_PREFIX}app"] == (
        f"{image}@{v2}"
    )
    assert events(cluster, ns, "RolloutTriggered") == []
    assert len(list_items(cluster, "replicasets", ns, "owner=mine")) == 1
    print(
        f"overlapping selectors: adopted at {v2[:15]}, stranger on {v1[:15]} ignored; {report.api_requests}"
    )


def test_statefulset_and_daemonset_are_read_from_their_own_pods(
    cluster: LocalCluster, registry: LocalRegistry, node_namespace: str, node: LocalNode, unique_repo: str
) -> None:
    ns = node_namespace
    node.trust_registry(registry)
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = push_runnable(registry, unique_repo, "latest", seed=103)
    for kind, name in (("StatefulSet", "db"), ("DaemonSet", "agent")):
        manifest = workload(kind, name, ns, [("app", image)])  # nothing recorded
        # Only on the real node: other tests' Node objects (the simulated kubelet's) would get a pod
        # that nothing here runs.
        manifest["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node.name}
        apply(cluster, manifest)
    expected = {image_id(image, v1)}
    for name in ("db", "agent"):
        wait_for(
            f"{name} running v1",
            lambda n=name: running_image_ids(cluster, ns, n) == expected,
            ROLLOUT_TIMEOUT,
        )
    v2 = push_runnable(registry, unique_repo, "latest", seed=104)

    report = _cycle(cluster, ns)

    assert sorted((o.plan.workload.kind, o.result) for o in report.outcomes) == [
        ("DaemonSet", Result.ROLLED_OUT),
        ("StatefulSet", Result.ROLLED_OUT),
    ]
    for plan in report.plans:
        assert isinstance(plan.action, Rollout)
        assert [(c.old, c.new) for c in plan.action.changes] == [(v1, v2)]


def test_pods_not_ready_record_nothing_until_one_is_then_the_drift_rolls_out(
    cluster: LocalCluster,
    registry: LocalRegistry,
    namespace: str,
    unique_repo: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # No node runs this namespace's pods: the pod stays Pending, as while a slow pull runs.
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=105)
    apply(cluster, workload("Deployment", "slow", namespace, [("app", image)]))
    wait_for("a pod", lambda: list_items(cluster, "pods", namespace, "app=slow"))
    v2 = registry.push_image(unique_repo, "latest", seed=106)  # the pending pod pulled v1 already

    with caplog.at_level(logging.DEBUG, logger="kube_autorollout.reconciler"):
        waiting = _cycle(cluster, namespace)

    [plan] = waiting.plans
    assert plan.action is None
    assert [(v.state, v.detail) for v in plan.verdicts] == [(ContainerState.WAITING, "1 pod(s), none Ready")]
    assert waiting.outcomes == []
    assert "PATCH" not in waiting.api_requests
    assert f"{DIGEST_PREFIX}app" not in (get(cluster, "Deployment", namespace, "slow")["metadata"].get(
        "annotations") or {})  # fmt: skip
    [line] = [r for r in caplog.records if r.getMessage().startswith("adoption waits")]
    assert line.levelno == logging.DEBUG
    status = run_cli(cluster, write_config(tmp_path / "config.yaml", [namespace]), "status")
    assert status.returncode == 0, status.stderr
    [row] = status.stdout.splitlines()[1:]
    assert row.split()[4:6] == ["<none>", v2.split(":")[1][:12]]
    assert row.endswith("waiting-for-pods (1 pod(s), none Ready)")

    make_pods_run(cluster, namespace, "slow", image_id(image, v1))  # Ready at last, running v1
    rolled = _cycle(cluster, namespace)
    print(f"pending pod: waiting cycle {waiting.api_requests}; once Ready on v1: {rolled.api_requests}")

    assert [o.result for o in rolled.outcomes] == [Result.ROLLED_OUT]
    [event] = events(cluster, namespace, "RolloutTriggered")
    assert f"{v1} -> {v2}" in event["message"]
    annotations = get(cluster, "Deployment", namespace, "slow")["metadata"]["annotations"]
    assert annotations[f"{DIGEST_PREFIX}app"] == f"{image}@{v2}"
    wait_replicasets(cluster, namespace, "slow", 2)


def test_scaled_to_zero_is_adopted_at_the_registry_digest_without_reading_pods(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    digest = registry.push_image(unique_repo, "latest", seed=107)
    apply(cluster, workload("Deployment", "idle", namespace, [("app", image)], replicas=0))
    nowhere = workload("DaemonSet", "nowhere", namespace, [("app", image)])
    nowhere["spec"]["template"]["spec"]["nodeSelector"] = {"kube-autorollout-test/no-such-node": "x"}
    apply(cluster, nowhere)
    for kind, name in (("Deployment", "idle"), ("DaemonSet", "nowhere")):
        # Until its controller has written status once, a guarded patch could meet a newer version.
        wait_for(f"{name} observed", lambda k=kind, n=name: _observed(cluster, namespace, k, n))

    report = _cycle(cluster, namespace)

    assert sorted((o.plan.workload.name, o.result) for o in report.outcomes) == [
        ("idle", Result.ADOPTED),
        ("nowhere", Result.ADOPTED),
    ]
    assert {p.workload.name: p.workload.desired_pods for p in report.plans} == {"idle": 0, "nowhere": 0}
    # No pod or ReplicaSet LIST (nothing runs to ask): a GET only re-reads after a rejected guarded patch.
    rereads = sum(o.attempts - 1 for o in report.outcomes)
    print(f"scaled to zero: {report.api_requests} (re-reads after a rejected guard: {rereads})")
    assert report.api_requests == {"PATCH": 2 + rereads, **({"GET": rereads} if rereads else {})}
    for kind, name in (("Deployment", "idle"), ("DaemonSet", "nowhere")):
        annotations = get(cluster, kind, namespace, name)["metadata"]["annotations"]
        assert annotations[f"{DIGEST_PREFIX}app"] == f"{image}@{digest}"
