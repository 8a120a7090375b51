"""Platform comparison on the real node, whose kubelet reports its own nodeInfo (linux/amd64): an index
move of the arm64 entry only is recorded without touching the pods; a move of the amd64 entry rolls
out once, and the new pods' imageID, as the kubelet reports it, is the recorded index digest."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from autorollout.annotations import format_platforms
from tests.e2e.real_node_helpers import (
    ROLLOUT_TIMEOUT,
    SCHEDULE,
    create_pull_secret,
    deployment,
    image_ids,
    recorded_digest,
    running_pods,
)
from tests.e2e.reconciler_helpers import apply, events, replicaset_count, start_cli, wait_for, write_config
from tests.e2e.webhook_process import get
from tests.harness.cluster import LocalCluster
from tests.harness.kubelet import image_id
from tests.harness.node import LocalNode
from tests.harness.podimages import push_shell_image, push_shell_index
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e

PLATFORMS = "platforms.kube-autorollout/app"


def _platform_record(cluster: LocalCluster, namespace: str) -> str | None:
    annotations = get(cluster, "Deployment", namespace, "shop")["metadata"].get("annotations") or {}
    value = annotations.get(PLATFORMS)
    return value if isinstance(value, str) else None


def test_platform_mode_on_the_real_node_records_other_platforms_moves_and_rolls_its_own_once(
    cluster: LocalCluster,
    node: LocalNode,
    node_registry_basic: LocalRegistry,
    node_namespace: str,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    ns, registry = node_namespace, node_registry_basic
    create_pull_secret(cluster, ns, registry)
    image = f"{registry.host}/{unique_repo}:latest"
    pusher = registry.pusher()
    try:
        v1, first = push_shell_index(pusher, unique_repo, "latest", seed=1621)
        manifest = deployment("shop", ns, image)
        manifest["metadata"]["annotations"] = {
            "digest.kube-autorollout/app": f"{image}@{v1}",
            "policy.kube-autorollout/compare": "platform",
        }
        apply(cluster, manifest)
        pods = wait_for("2 pods running", lambda: running_pods(cluster, ns, "shop", 2), ROLLOUT_TIMEOUT)
        assert image_ids(pods) == {image_id(image, v1)}  # the kubelet reports the index digest
        uids = {p["metadata"]["uid"] for p in pods}

        config = write_config(tmp_path / "config.yaml", [ns], cronSchedule=SCHEDULE)
        process = start_cli(cluster, config, "reconcile", log_path=tmp_path / "reconcile.log")
        try:
            baseline = format_platforms(v1, {"linux/amd64": first["linux/amd64"]})
            wait_for("the platform record", lambda: _platform_record(cluster, ns) == baseline, 60)

            arm64 = push_shell_image(pusher, unique_repo, None, seed=1622, platform="linux/arm64")
            v2 = pusher.push_index_over(
                unique_repo, "latest", {"linux/amd64": first["linux/amd64"], "linux/arm64": arm64}
            )
            wait_for("the record of v2", lambda: recorded_digest(cluster, ns, "shop") == v2, 60)
            time.sleep(6)  # three more cycles
            # (Not `generation`: a Deployment's grows with every annotation write, record-only too.)
            assert replicaset_count(cluster, ns, "shop") == 1
            assert _platform_record(cluster, ns) == format_platforms(
                v2, {"linux/amd64": first["linux/amd64"]}
            )
            still = running_pods(cluster, ns, "shop", 2)
            assert {p["metadata"]["uid"] for p in still} == uids  # not a pod touched
            assert not events(cluster, ns, "RolloutTriggered")

            amd64 = push_shell_image(pusher, unique_repo, None, seed=1623, platform="linux/amd64")
            v3 = pusher.push_index_over(unique_repo, "latest", {"linux/amd64": amd64, "linux/arm64": arm64})
            wait_for("the rollout", lambda: replicaset_count(cluster, ns, "shop") == 2, ROLLOUT_TIMEOUT)
            pods = wait_for(
                "new pods running",
                lambda: (
                    (p := running_pods(cluster, ns, "shop", 2))
                    and image_ids(p) == {image_id(image, v3)}
                    and p
                ),
                ROLLOUT_TIMEOUT,
            )
            time.sleep(6)  # no second rollout for the same move
            assert replicaset_count(cluster, ns, "shop") == 2
        finally:
            process.terminate()
            process.wait(timeout=20)
    finally:
        pusher.close()
    # The recorded digest is the index digest, which is what the kubelet reports as imageID.
    assert recorded_digest(cluster, ns, "shop") == v3
    assert {s["imageID"].rpartition("@")[2] for p in pods for s in p["status"]["containerStatuses"]} == {v3}
    assert _platform_record(cluster, ns) == format_platforms(v3, {"linux/amd64": amd64})
    assert len(events(cluster, ns, "RolloutTriggered")) == 1
