"""The whole product path: the webhook (a real process behind a real MutatingWebhookConfiguration)
records the digest at apply time, the real node (kubelet + containerd) pulls and runs the pods, the
reconciler CLI rolls out after a push, and the new pods run the new digest the kubelet reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.real_node_helpers import ROLLOUT_TIMEOUT
from tests.e2e.reconciler_helpers import (
    DIGEST_PREFIX,
    apply,
    events,
    replicaset_count,
    run_cli,
    running_image_ids,
    wait_for,
    workload,
    write_config,
)
from tests.e2e.webhook_process import WebhookProcess, get, registered
from tests.harness.cluster import LocalCluster
from tests.harness.kubelet import image_id
from tests.harness.node import LocalNode
from tests.harness.podimages import push_runnable
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e


def test_webhook_records_node_runs_reconciler_rolls_out(
    cluster: LocalCluster,
    registry: LocalRegistry,
    node_namespace: str,
    node: LocalNode,
    webhook: WebhookProcess,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    ns = node_namespace
    node.trust_registry(registry)
    probe = f"{registry.host}/{unique_repo}-probe:latest"
    push_runnable(registry, f"{unique_repo}-probe", "latest", seed=90)
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = push_runnable(registry, unique_repo, "latest", seed=91)
    config = write_config(tmp_path / "config.yaml", [ns])
    with registered(cluster, webhook, [ns], probe):
        apply(cluster, workload("Deployment", "shop", ns, [("web", image)]))  # nothing recorded by hand
        recorded = get(cluster, "Deployment", ns, "shop")["metadata"]["annotations"][f"{DIGEST_PREFIX}web"]
        assert recorded == f"{image}@{v1}"  # the webhook's baseline
        wait_for(
            "pods running v1",
            lambda: running_image_ids(cluster, ns, "shop") == {image_id(image, v1)},
            ROLLOUT_TIMEOUT,
        )

        v2 = push_runnable(registry, unique_repo, "latest", seed=92)
        result = run_cli(cluster, config, "reconcile", "--once")

        assert result.returncode == 0, result.stderr
        assert "rolled out 1" in result.stdout
        # The rollout patch went through the webhook too, which kept the fresh digests it carried.
        assert (
            get(cluster, "Deployment", ns, "shop")["metadata"]["annotations"][f"{DIGEST_PREFIX}web"]
            == f"{image}@{v2}"
        )
        wait_for(
            "pods running v2",
            lambda: running_image_ids(cluster, ns, "shop") == {image_id(image, v2)},
            ROLLOUT_TIMEOUT,
        )
        assert replicaset_count(cluster, ns, "shop") == 2
        assert len(events(cluster, ns, "RolloutTriggered")) == 1
        assert "rolled out 0" in run_cli(cluster, config, "reconcile", "--once").stdout

        # The record lost (e.g. removed by hand): adopted from what the pods run, no second rollout.
        cluster.kubectl("annotate", "deployment", "shop", "-n", ns, f"{DIGEST_PREFIX}web-")
        adopted = run_cli(cluster, config, "reconcile", "--once")
        assert adopted.returncode == 0, adopted.stderr
        assert f"container web: {image}@{v2} (adoption, no rollout)" in adopted.stdout
        assert replicaset_count(cluster, ns, "shop") == 2
