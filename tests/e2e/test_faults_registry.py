"""Registry faults seen by the running reconciler: a registry slower than the cycle timeout, one that
answers 503 for good, and a wrong password, beside a healthy registry whose tag moved. Expected over
several cycles: the healthy workload rolls out once, the slow one once its answer arrives (with the
true digest), no rollout caused by an error, every cycle ends
within its timeout, retries stay bounded per cycle, and the rejected credential is sent once and then
not again during its backoff (no account lock-out)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.e2e.reconciler_helpers import (
    apply,
    events,
    log_messages,
    replicaset_count,
    start_cli,
    wait_for,
    wait_replicasets,
    workload,
    write_config,
)
from tests.e2e.webhook_process import get
from tests.harness.cluster import LocalCluster
from tests.harness.faultproxy import FaultProxy
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e

TIMEOUT = 1.5


def test_registry_faults_cause_no_rollout_and_bounded_requests(
    cluster: LocalCluster,
    registry: LocalRegistry,
    registry_basic: LocalRegistry,
    namespace: str,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    assert registry_basic.username is not None
    slow = FaultProxy(registry.url, "slow", delay=4 * TIMEOUT)
    broken = FaultProxy(registry.url, "status", status=503)
    try:
        v1 = {
            "healthy": registry.push_image(unique_repo, "latest", seed=1),
            "locked": registry_basic.push_image(unique_repo, "latest", seed=1),
        }
        images = {
            "healthy": f"{registry.host}/{unique_repo}:latest",
            "slow": f"{slow.host}/{unique_repo}:latest",
            "broken": f"{broken.host}/{unique_repo}:latest",
            "locked": f"{registry_basic.host}/{unique_repo}:latest",
        }
        for name, image in images.items():
            recorded = v1["locked"] if name == "locked" else v1["healthy"]
            apply(
                cluster, workload("Deployment", name, namespace, [("app", image)], recorded={"app": recorded})
            )
        for name in images:
            wait_replicasets(cluster, namespace, name, 1)
        v2 = registry.push_image(unique_repo, "latest", seed=2)
        registry_basic.push_image(unique_repo, "latest", seed=2)

        mount = tmp_path / "pull"
        mount.mkdir()
        auth = base64.b64encode(f"{registry_basic.username}:wrong-password".encode()).decode()
        (mount / ".dockerconfigjson").write_text(json.dumps({"auths": {registry_basic.host: {"auth": auth}}}))
        config = write_config(
            tmp_path / "config.yaml",
            [namespace],
            cronSchedule="* * * * * *",
            digestCacheTtlSeconds=0,
            reconciler={"cycleTimeoutSeconds": TIMEOUT},
            registries=[
                {
                    "hostnamePattern": registry_basic.host,
                    "secret": {"type": "ImagePullSecret", "name": "pull", "mountPath": str(mount)},
                }
            ],
        )
        basic_before = registry_basic.request_count(path_substring=unique_repo)
        log = tmp_path / "reconcile.log"
        process = start_cli(cluster, config, "reconcile", log_path=log)
        try:

            def finished() -> list[dict[str, object]]:
                return [m for m in log_messages(log) if m.get("msg") == "cycle finished"]

            wait_replicasets(cluster, namespace, "healthy", 2)
            wait_replicasets(cluster, namespace, "slow", 2)
            wait_for("five cycles", lambda: len(finished()) >= 5, timeout=60)
            cycles = finished()
            broken_requests, slow_requests = len(broken.requests), len(slow.requests)
        finally:
            process.terminate()
            process.wait(timeout=20)

        for name in ("broken", "locked"):
            assert replicaset_count(cluster, namespace, name) == 1, f"{name}: no rollout caused by an error"
            annotations = get(cluster, "Deployment", namespace, name)["metadata"]["annotations"]
            assert annotations["digest.kube-autorollout/app"].endswith(
                v1[name] if name == "locked" else v1["healthy"]
            )
        # The slow registry does answer, late: a later cycle joins the lookup still in flight and gets
        # the true new digest, so that workload converges (once) instead of never.
        for name in ("healthy", "slow"):
            assert replicaset_count(cluster, namespace, name) == 2, f"{name}: rolled out exactly once"
            annotations = get(cluster, "Deployment", namespace, name)["metadata"]["annotations"]
            assert annotations["digest.kube-autorollout/app"] == f"{images[name]}@{v2}"
        durations = [float(str(c["duration_ms"])) / 1000 for c in cycles]
        assert max(durations) < TIMEOUT + 1.0, durations
        # 503: three attempts per cycle at most; slow: at most one request per cycle (never piled up).
        assert broken_requests <= 3 * (len(cycles) + 1), (broken_requests, len(cycles))
        assert slow_requests <= len(cycles) + 1, (slow_requests, len(cycles))
        # Wrong password: an anonymous probe and one Basic attempt, then nothing during the backoff.
        basic_requests = registry_basic.request_count(path_substring=unique_repo) - basic_before
        assert basic_requests == 2
        warned = {e["involvedObject"]["name"] for e in events(cluster, namespace, "RegistryLookupFailed")}
        assert {"broken", "locked"} <= warned <= {"slow", "broken", "locked"}
        print(
            f"{len(cycles)} cycles, longest {max(durations):.2f}s; 503 proxy {broken_requests} requests;"
            f" slow proxy {slow_requests}; basic registry {basic_requests}"
        )
    finally:
        slow.close()
        broken.close()
