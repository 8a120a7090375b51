"""The health watch on the real node (kubelet + containerd): a pushed image that exits non-zero
crash-loops -> RolloutFailed naming the pods' reason -> held (no second rollout to that digest over
several cycles) -> a fixed push rolls again -> RolloutSucceeded; and an `IfNotPresent` container whose
tag the node has cached keeps running the old digest after a successful rollout -> MixedDigests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.real_node_helpers import ROLLOUT_TIMEOUT, deployment, image_ids, running_pods
from tests.e2e.reconciler_helpers import DIGEST_PREFIX, RESTARTED_AT, apply, events, list_items, wait_for
from tests.e2e.test_real_node import reconciler_running
from tests.e2e.webhook_process import get
from tests.harness.cluster import LocalCluster
from tests.harness.kubelet import image_id
from tests.harness.node import LocalNode
from tests.harness.podimages import push_shell_image
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e

HOLD = "hold.kube-autorollout/app"
#: Short, so a crash-looping rollout fails within the test's patience (the controller's own deadline).
PROGRESS_DEADLINE = 20


def _shop(
    namespace: str, image: str, digest: str, *, pull_policy: str = "Always", probe: bool = False
) -> dict[str, Any]:
    manifest = deployment("shop", namespace, image, replicas=1)
    manifest["metadata"]["annotations"] = {f"{DIGEST_PREFIX}app": f"{image}@{digest}"}
    manifest["spec"]["progressDeadlineSeconds"] = PROGRESS_DEADLINE
    pod_spec = manifest["spec"]["template"]["spec"]
    del pod_spec["imagePullSecrets"]
    pod_spec["containers"][0]["imagePullPolicy"] = pull_policy
    if probe:
        # Without one, a container that exits at once is Ready for a moment: its Deployment completes
        # (and drops the old pod) and the watch's own deadline ends it (unit-tested); with one, the
        # old pod keeps serving and the controller says ProgressDeadlineExceeded.
        exec_true = {"exec": {"command": ["/bin/sh", "-c", "true"]}, "periodSeconds": 1}
        pod_spec["containers"][0]["readinessProbe"] = exec_true
    return manifest


def _annotations(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    return dict(get(cluster, "Deployment", namespace, "shop")["metadata"].get("annotations") or {})


def _restarted(cluster: LocalCluster, namespace: str) -> str | None:
    template = get(cluster, "Deployment", namespace, "shop")["spec"]["template"]
    return (template["metadata"].get("annotations") or {}).get(RESTARTED_AT)


def test_crash_looping_rollout_fails_is_held_and_a_fixed_push_succeeds(
    cluster: LocalCluster,
    node: LocalNode,
    node_registry_tls: LocalRegistry,
    node_namespace: str,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    ns, registry = node_namespace, node_registry_tls
    image = f"{registry.host}/{unique_repo}:latest"
    pusher = registry.pusher()
    tls = {"caCertificatePaths": [str(registry.ca_file)]}
    try:
        first = push_shell_image(pusher, unique_repo, "latest", seed=41)
        apply(cluster, _shop(ns, image, first, probe=True))
        wait_for("pod running", lambda: running_pods(cluster, ns, "shop", 1), ROLLOUT_TIMEOUT)
        with reconciler_running(cluster, ns, tmp_path, tls=tls):
            broken = push_shell_image(pusher, unique_repo, "latest", "echo crashing; exit 3", seed=42)
            rolled = wait_for("rollout", lambda: _restarted(cluster, ns), ROLLOUT_TIMEOUT)
            failed = wait_for("RolloutFailed", lambda: events(cluster, ns, "RolloutFailed"), ROLLOUT_TIMEOUT)
            message = failed[0]["message"]
            assert f"container app: {first} -> {broken}" in message
            assert "ProgressDeadlineExceeded" in message  # the readiness probe kept it from completing
            assert "pod shop-" in message
            assert "exit code 3" in message
            annotations = _annotations(cluster, ns)
            assert annotations[HOLD] == broken
            assert annotations[f"{DIGEST_PREFIX}app"] == f"{image}@{first}"
            # The old pod still serves: maxUnavailable 0 kept it.
            ready = [
                s["imageID"]
                for p in list_items(cluster, "pods", ns, "app=shop")
                for s in p["status"].get("containerStatuses") or ()
                if s.get("ready")
            ]
            assert ready == [image_id(image, first)]
            cycles = 4
            wait_for("cycles on the held digest", lambda: _held_cycles(tmp_path) >= cycles, 60)
            assert _restarted(cluster, ns) == rolled
            assert len(events(cluster, ns, "RolloutTriggered")) == 1

            fixed = push_shell_image(pusher, unique_repo, "latest", seed=43)
            wait_for("the fix rolled", lambda: _restarted(cluster, ns) != rolled, ROLLOUT_TIMEOUT)
            succeeded = wait_for(
                "RolloutSucceeded", lambda: events(cluster, ns, "RolloutSucceeded"), ROLLOUT_TIMEOUT
            )
            pods = wait_for(
                "the fixed pod running",
                lambda: (
                    (p := running_pods(cluster, ns, "shop", 1)) and image_ids(p) == {image_id(image, fixed)}
                ),
                ROLLOUT_TIMEOUT,
            )
            assert pods
    finally:
        pusher.close()
    assert f"container app: {first} -> {fixed}" in succeeded[0]["message"]
    assert HOLD not in _annotations(cluster, ns)
    assert len(events(cluster, ns, "RolloutFailed")) == 1
    assert len(events(cluster, ns, "RolloutSucceeded")) == 1
    assert len(events(cluster, ns, "RolloutTriggered")) == 2


def _held_cycles(workdir: Path) -> int:
    text = (workdir / "reconcile.log").read_text(errors="replace")
    return text.count('"rollout pending: held')


def test_if_not_present_container_on_a_cached_tag_is_reported_as_mixed_digests(
    cluster: LocalCluster,
    node: LocalNode,
    node_registry_tls: LocalRegistry,
    node_namespace: str,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    ns, registry = node_namespace, node_registry_tls
    image = f"{registry.host}/{unique_repo}:latest"
    pusher = registry.pusher()
    tls = {"caCertificatePaths": [str(registry.ca_file)]}
    try:
        first = push_shell_image(pusher, unique_repo, "latest", seed=51)
        apply(cluster, _shop(ns, image, first, pull_policy="IfNotPresent"))
        wait_for("pod running", lambda: running_pods(cluster, ns, "shop", 1), ROLLOUT_TIMEOUT)
        with reconciler_running(cluster, ns, tmp_path, tls=tls):
            second = push_shell_image(pusher, unique_repo, "latest", seed=52)
            mixed = wait_for("MixedDigests", lambda: events(cluster, ns, "MixedDigests"), ROLLOUT_TIMEOUT)
            assert events(cluster, ns, "RolloutSucceeded")
    finally:
        pusher.close()
    # The node had the tag cached at the old digest: the new pod runs it, not the recorded one.
    assert f"1 of 1 ready pods run {first}, not the recorded {second}" in mixed[0]["message"]
    assert _annotations(cluster, ns)["mixed.kube-autorollout/app"] == f"{first} 1/1"
    assert image_ids(running_pods(cluster, ns, "shop", 1)) == {image_id(image, first)}
    assert len(events(cluster, ns, "MixedDigests")) == 1
