"""The simulated node runs pods as a kubelet pulling with `Always` would report them."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.harness.cluster import LocalCluster
from tests.harness.kubelet import SimulatedKubelet, image_id
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e


def _pods(cluster: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def _deployment(image: str) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": image, "imagePullPolicy": "Always"}]},
                },
            },
        }
    )


def test_pods_run_with_the_digest_their_tag_had(
    cluster: LocalCluster, running_namespace: str, registry: LocalRegistry, kubelet: SimulatedKubelet
) -> None:
    ns = running_namespace
    # The kubelet lives for the session: errors it met before (another test restarting the API
    # server) are not this test's.
    errors_before = len(kubelet.errors)
    image = f"{registry.host}/sim/web:main"
    first = registry.push_image("sim/web", "main")
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=_deployment(image))
    cluster.kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s")
    pods = _pods(cluster, ns)
    assert len(pods) == 2
    assert {p["status"]["containerStatuses"][0]["imageID"] for p in pods} == {image_id(image, first)}
    assert image_id(image, first) == f"{registry.host}/sim/web@{first}"

    # A new image under the same tag, then a rollout: the new pods report the new digest,
    # and the old ones are gone (the simulated node finishes their deletion).
    second = registry.push_image("sim/web", "main")
    cluster.kubectl("rollout", "restart", "-n", ns, "deployment/web")
    cluster.kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=60s")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ids = [p["status"].get("containerStatuses", [{}])[0].get("imageID") for p in _pods(cluster, ns)]
        if ids == [image_id(image, second)] * 2:
            break
        time.sleep(0.2)
    assert ids == [image_id(image, second)] * 2
    assert kubelet.errors[errors_before:] == []
