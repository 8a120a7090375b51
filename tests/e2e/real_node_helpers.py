"""What the real-node e2e tests share: a pull-secret Deployment, its pods as the kubelet reports them,
and the push -> exactly one rollout -> new digest running check."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from tests.e2e.reconciler_helpers import DIGEST_PREFIX, events, list_items, wait_for, workload
from tests.e2e.webhook_process import get
from tests.harness.cluster import LocalCluster
from tests.harness.kubelet import image_id
from tests.harness.registry import LocalRegistry

PULL_SECRET = "registry-login"
#: A reconciler cycle every 2 s: a few cycles fit in the time a test waits for "exactly once".
SCHEDULE = "*/2 * * * * *"
#: Late in a full run the real kubelet has been seen to report a started container Running only about
#: 126 s later (containerd had started it in 0.3 s; the kubelet logged nothing in between): a deadline
#: past that, until the cause is found. Waits end as soon as the state is reached.
ROLLOUT_TIMEOUT = 300.0


def create_pull_secret(cluster: LocalCluster, namespace: str, registry: LocalRegistry) -> None:
    cluster.kubectl(
        "create", "secret", "docker-registry", PULL_SECRET, "-n", namespace,
        f"--docker-server={registry.host}", f"--docker-username={registry.username}",
        f"--docker-password={registry.password}",
    )  # fmt: skip


def deployment(name: str, namespace: str, image: str, *, replicas: int = 2) -> dict[str, Any]:
    manifest = workload("Deployment", name, namespace, [("app", image)], replicas=replicas)
    pod_spec = manifest["spec"]["template"]["spec"]
    pod_spec["imagePullSecrets"] = [{"name": PULL_SECRET}]
    pod_spec["terminationGracePeriodSeconds"] = 2
    return manifest


def running_pods(cluster: LocalCluster, namespace: str, app: str, replicas: int) -> list[dict[str, Any]]:
    """The app's pods once exactly `replicas` of them are Running and Ready and none is going away."""
    pods = list_items(cluster, "pods", namespace, f"app={app}")
    settled = len(pods) == replicas and all(
        not p["metadata"].get("deletionTimestamp")
        and p["status"].get("phase") == "Running"
        and all(s.get("ready") for s in p["status"].get("containerStatuses") or [{}])
        for p in pods
    )
    return pods if settled else []


def image_ids(pods: list[dict[str, Any]]) -> set[str]:
    return {s["imageID"] for p in pods for s in p["status"]["containerStatuses"]}


def generation(cluster: LocalCluster, namespace: str, name: str) -> int:
    return int(get(cluster, "Deployment", namespace, name)["metadata"]["generation"])


def recorded_digest(cluster: LocalCluster, namespace: str, name: str) -> str:
    annotations = get(cluster, "Deployment", namespace, name)["metadata"]["annotations"]
    return str(annotations[f"{DIGEST_PREFIX}app"]).rpartition("@")[2]


def roll_and_check(
    cluster: LocalCluster,
    ns: str,
    image: str,
    push_new: Callable[[], str],
    first: str,
    reconciler: contextlib.AbstractContextManager[Any],
) -> tuple[str, float]:
    """Deployment "shop"'s 2 pods run `first`; with `reconciler` running (on a 2 s schedule), push
    (push_new() -> digest): it rolls out exactly once, and the new pods run the new digest as the
    kubelet reports it, equal to the recorded one. Returns (new digest, seconds from push to the new
    pods running)."""
    pods = wait_for("2 pods running", lambda: running_pods(cluster, ns, "shop", 2), ROLLOUT_TIMEOUT)
    assert image_ids(pods) == {image_id(image, first)}
    assert recorded_digest(cluster, ns, "shop") == first
    assert generation(cluster, ns, "shop") == 1
    with reconciler:
        time.sleep(5)  # cycles on an unmoved tag: nothing happens
        assert generation(cluster, ns, "shop") == 1
        pushed = time.monotonic()
        second = push_new()
        wait_for("rollout", lambda: generation(cluster, ns, "shop") == 2, ROLLOUT_TIMEOUT)
        pods = wait_for(
            "new pods running",
            lambda: (
                (p := running_pods(cluster, ns, "shop", 2))
                and image_ids(p) == {image_id(image, second)}
                and p
            ),
            ROLLOUT_TIMEOUT,
        )
        took = time.monotonic() - pushed
        time.sleep(6)  # three more cycles: no second rollout for the same move
        assert generation(cluster, ns, "shop") == 2
    assert recorded_digest(cluster, ns, "shop") == second
    assert {s["imageID"].rpartition("@")[2] for p in pods for s in p["status"]["containerStatuses"]} == {
        second
    }
    assert len(events(cluster, ns, "RolloutTriggered")) == 1
    return second, took
