"""The health watch on the real control plane and registry: a rollout whose Deployment cannot make
progress fails (its controller's ProgressDeadlineExceeded), is held at that digest across a SIGKILL of
the process and an API server restart, and a fixed push rolls and succeeds; a success whose ready pods
run two digests is reported as mixed digests (status, metric, one Event)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.reconciler_helpers import (
    DIGEST_PREFIX,
    RESTARTED_AT,
    apply,
    events,
    list_items,
    replicaset_count,
    run_cli,
    start_cli,
    wait_for,
    workload,
    write_config,
)
from tests.e2e.webhook_process import get
from tests.harness.cluster import LocalCluster
from tests.harness.kubelet import SimulatedKubelet, image_id
from tests.harness.registry import LocalRegistry, free_port

pytestmark = pytest.mark.e2e

WATCH = "health.kube-autorollout/watch"
HOLD = "hold.kube-autorollout/app"
MIXED = "mixed.kube-autorollout/app"


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _annotations(cluster: LocalCluster, namespace: str, name: str) -> dict[str, str]:
    return dict(get(cluster, "Deployment", namespace, name)["metadata"].get("annotations") or {})


def _restarted(cluster: LocalCluster, namespace: str, name: str) -> str | None:
    """The pod template's restartedAt: a new value is a new rollout (a Deployment's generation also
    moves with every annotation the verdict writes)."""
    template = get(cluster, "Deployment", namespace, name)["spec"]["template"]
    return (template["metadata"].get("annotations") or {}).get(RESTARTED_AT)


def _deployment(
    name: str, namespace: str, image: str, digest: str, *, deadline: int, replicas: int = 1
) -> dict[str, Any]:
    manifest = workload(
        "Deployment", name, namespace, [("app", image)], recorded={"app": digest}, replicas=replicas
    )
    manifest["spec"]["progressDeadlineSeconds"] = deadline
    return manifest


def test_failed_rollout_is_held_across_sigkill_and_apiserver_restart_then_a_fix_succeeds(
    cluster: LocalCluster,
    registry: LocalRegistry,
    namespace: str,
    kubelet: SimulatedKubelet,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=1)
    # No node runs this namespace's pods yet: the new ReplicaSet makes no progress.
    apply(cluster, _deployment("shop", namespace, image, v1, deadline=20))
    port = free_port()
    config = write_config(
        tmp_path / "config.yaml", [namespace], cronSchedule="* * * * * *", webserver={"port": port}
    )
    v2 = registry.push_image(unique_repo, "latest", seed=2)

    first = start_cli(cluster, config, "reconcile", log_path=tmp_path / "first.log")
    try:
        watch = wait_for("the watch record", lambda: _annotations(cluster, namespace, "shop").get(WATCH), 60)
    finally:
        _stop(first, signal.SIGKILL)  # the verdict is pending: only the annotation knows
    assert f"app={v1},{v2}" in watch
    rolled = _restarted(cluster, namespace, "shop")
    assert rolled is not None
    assert rolled.rstrip("Z") in watch  # the watch record names the rollout it follows

    second = start_cli(cluster, config, "reconcile", log_path=tmp_path / "second.log")
    try:
        time.sleep(1.0)
        down = cluster.restart_apiserver(down_seconds=1.0)
        assert WATCH in _annotations(cluster, namespace, "shop"), "judged before the deadline"
        failed = wait_for("RolloutFailed", lambda: events(cluster, namespace, "RolloutFailed"), 120)
        annotations = _annotations(cluster, namespace, "shop")
        assert annotations[HOLD] == v2
        assert WATCH not in annotations
        assert annotations[f"{DIGEST_PREFIX}app"] == f"{image}@{v1}"  # the old pods run it
        assert annotations["health.kube-autorollout/verdict"].startswith("failed ")
        message = failed[0]["message"]
        assert failed[0]["type"] == "Warning"
        assert f"container app: {v1} -> {v2}" in message
        assert "ProgressDeadlineExceeded" in message
        assert "kubectl annotate -n" in message
        held = "kube_autorollout_held_workloads 1.0"
        wait_for("the held gauge", lambda: held in _metrics(port))
        assert 'kube_autorollout_rollout_verdicts_total{kind="Deployment",verdict="failed"} 1.0' in _metrics(
            port
        )
        assert "kube_autorollout_rollouts_watched 0.0" in _metrics(port)
    finally:
        _stop(second, signal.SIGKILL)  # the hold is on the workload: a new process keeps it

    third = start_cli(cluster, config, "reconcile", log_path=tmp_path / "third.log")
    try:
        wait_for("the held gauge", lambda: held in _metrics(port), 60)
        time.sleep(5)  # five cycles on the held digest: no second rollout to it
        assert _restarted(cluster, namespace, "shop") == rolled
        assert replicaset_count(cluster, namespace, "shop") == 2
        assert len(events(cluster, namespace, "RolloutFailed")) == 1
        assert len(events(cluster, namespace, "RolloutTriggered")) == 1
        assert not events(cluster, namespace, "RolloutHeld")  # its RolloutFailed said so
        status = run_cli(cluster, config, "status")
        assert f"pending (held (container app at {v2}))" in status.stdout
        assert (
            f"container app at {v2} (lift: kubectl annotate -n {namespace} deployment/shop {HOLD}-)"
            in status.stdout
        )

        # The fix is pushed, and a node runs the pods now: the rollout succeeds and lifts the hold.
        kubelet.watch_namespace(namespace)
        v3 = registry.push_image(unique_repo, "latest", seed=3)
        wait_for("the fix rolled", lambda: _restarted(cluster, namespace, "shop") != rolled, 60)
        succeeded = wait_for("RolloutSucceeded", lambda: events(cluster, namespace, "RolloutSucceeded"), 120)
        wait_for(
            "the hold gone from the gauge", lambda: "kube_autorollout_held_workloads 0.0" in _metrics(port)
        )
    finally:
        _stop(third)
    assert f"container app: {v1} -> {v3}" in succeeded[0]["message"]
    annotations = _annotations(cluster, namespace, "shop")
    assert HOLD not in annotations
    assert WATCH not in annotations
    assert annotations["health.kube-autorollout/verdict"].startswith("succeeded ")
    assert len(events(cluster, namespace, "RolloutSucceeded")) == 1
    assert len(events(cluster, namespace, "RolloutFailed")) == 1
    print(f"API server down for {down:.1f}s during the watch")


def _run_pod(cluster: LocalCluster, namespace: str, pod: dict[str, Any], image_id: str) -> None:
    """What a kubelet would report for one pod: Running and Ready, its container on `image_id`."""
    container = pod["spec"]["containers"][0]
    status = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {
                "name": container["name"], "image": container["image"], "imageID": image_id,
                "ready": True, "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
            }
        ],
    }  # fmt: skip
    cluster.kubectl(
        "patch", "pod", pod["metadata"]["name"], "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": status}),
    )  # fmt: skip


def _metrics(port: int) -> str:
    """The process's /metrics ("" while it is not serving yet)."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", trust_env=False, timeout=5).text
    except httpx.TransportError:
        return ""


def test_success_with_a_ready_pod_on_another_digest_reports_mixed_digests(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=11)
    apply(cluster, _deployment("shop", namespace, image, v1, deadline=600))
    port = free_port()
    config = write_config(
        tmp_path / "config.yaml",
        [namespace],
        cronSchedule="* * * * * *",
        webserver={"port": port},
        reconciler={"resyncSeconds": 3},
    )
    v2 = registry.push_image(unique_repo, "latest", seed=12)
    process = start_cli(cluster, config, "reconcile", log_path=tmp_path / "reconcile.log")
    try:
        wait_for("rollout", lambda: _restarted(cluster, namespace, "shop"), 60)
        pods = wait_for(
            "the new pod",
            lambda: (p := list_items(cluster, "pods", namespace, "app=shop")) and len(p) == 2 and p,
            60,
        )
        time.sleep(2)  # watched, not judged: nothing runs
        assert WATCH in _annotations(cluster, namespace, "shop")
        assert not events(cluster, namespace, "RolloutSucceeded")
        # The new pod starts on the old digest, as a node whose cached tag is stale would run it.
        newest = max(pods, key=lambda p: p["metadata"]["creationTimestamp"] + p["metadata"]["name"])
        _run_pod(cluster, namespace, newest, image_id(image, v1))
        mixed = wait_for("MixedDigests", lambda: events(cluster, namespace, "MixedDigests"), 120)
        assert f"1 of 1 ready pods run {v1}, not the recorded {v2}" in mixed[0]["message"]
        assert mixed[0]["type"] == "Warning"
        assert events(cluster, namespace, "RolloutSucceeded")
        assert _annotations(cluster, namespace, "shop")[MIXED] == f"{v1} 1/1"
        series = (
            'kube_autorollout_mixed_digest_pods{container="app",kind="Deployment",name="shop",'
            f'namespace="{namespace}"}} 1.0'
        )
        wait_for("the mixed series", lambda: series in _metrics(port))
        assert (
            'kube_autorollout_rollout_verdicts_total{kind="Deployment",verdict="succeeded"} 1.0'
            in _metrics(port)
        )
        status = run_cli(cluster, config, "status")
        assert f"container app: 1 of 1 ready pods run {v1}" in status.stdout
        time.sleep(3)  # more cycles: the mark is not said again
        assert len(events(cluster, namespace, "MixedDigests")) == 1
        # The pod runs the recorded digest now: the next recheck (a resync period later) clears it all.
        _run_pod(cluster, namespace, newest, image_id(image, v2))
        wait_for("the mark cleared", lambda: MIXED not in _annotations(cluster, namespace, "shop"), 60)
        wait_for("the series removed", lambda: "kube_autorollout_mixed_digest_pods{" not in _metrics(port))
    finally:
        _stop(process)


def test_hold_other_workloads_keeps_a_failed_digest_out_of_the_next_workload(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=21)
    apply(cluster, _deployment("first", namespace, image, v1, deadline=10))
    second = _deployment("second", namespace, image, v1, deadline=600)
    second["metadata"]["annotations"]["policy.kube-autorollout/settle"] = "30s"  # rolls later
    apply(cluster, second)
    config = write_config(
        tmp_path / "config.yaml",
        [namespace],
        cronSchedule="* * * * * *",
        rolloutPolicy={"holdOtherWorkloads": True},
    )
    v2 = registry.push_image(unique_repo, "latest", seed=22)
    process = start_cli(cluster, config, "reconcile", log_path=tmp_path / "reconcile.log")
    try:
        wait_for("RolloutFailed", lambda: events(cluster, namespace, "RolloutFailed"), 120)
        assert _annotations(cluster, namespace, "first")[HOLD] == v2
        held = wait_for("RolloutHeld", lambda: events(cluster, namespace, "RolloutHeld"), 120)
        assert held[0]["involvedObject"]["name"] == "second"
        assert f"not rolled to {v2}" in held[0]["message"]
        time.sleep(3)  # more cycles: still not rolled, said once
        assert _restarted(cluster, namespace, "second") is None
        assert len(events(cluster, namespace, "RolloutHeld")) == 1
        assert len(events(cluster, namespace, "RolloutTriggered")) == 1
        status = run_cli(cluster, config, "status")
        assert f"pending (held (container app at {v2}))" in status.stdout
    finally:
        _stop(process)
