"""The process dies: `kube-autorollout reconcile` SIGKILLed in the middle of a rate-limited cycle and
started again rolls every moved tag out exactly once; with leader election, a SIGKILLed leader (no
lease release) is replaced by the standby within the lease duration."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.reconciler_helpers import (
    apply,
    events,
    log_messages,
    namespaced_kubeconfig,
    replicaset_count,
    start_cli,
    wait_for,
    wait_replicasets,
    workload,
    write_config,
)
from tests.harness.cluster import LocalCluster
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)


def test_sigkill_mid_cycle_then_restart_rolls_every_workload_out_once(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=1)
    names = [f"w{i}" for i in range(6)]
    for name in names:
        apply(cluster, workload("Deployment", name, namespace, [("app", image)], recorded={"app": v1}))
    for name in names:
        wait_replicasets(cluster, namespace, name, 1)
    registry.push_image(unique_repo, "latest", seed=2)
    config = write_config(
        tmp_path / "config.yaml",
        [namespace],
        cronSchedule="* * * * * *",
        reconciler={"maxPatchesPerSecond": 1},
    )

    def rolled() -> int:
        return sum(replicaset_count(cluster, namespace, n) == 2 for n in names)

    first = start_cli(cluster, config, "reconcile", log_path=tmp_path / "first.log")
    try:
        wait_for("two rollouts", lambda: rolled() >= 2, timeout=30, interval=0.1)
    finally:
        _kill(first)
    at_kill = rolled()
    assert at_kill < len(names), "killed before the cycle finished"

    second = start_cli(cluster, config, "reconcile", log_path=tmp_path / "second.log")
    try:
        wait_for("every workload rolled out", lambda: rolled() == len(names), timeout=60)
        done = sum("cycle finished" in m["msg"] for m in log_messages(tmp_path / "second.log"))
        wait_for(
            "two more cycles",
            lambda: (
                sum("cycle finished" in m["msg"] for m in log_messages(tmp_path / "second.log")) >= done + 2
            ),
        )
    finally:
        second.terminate()
        second.wait(timeout=20)
    for name in names:
        assert replicaset_count(cluster, namespace, name) == 2, f"{name} rolled out exactly once"
    emitted = [e["involvedObject"]["name"] for e in events(cluster, namespace, "RolloutTriggered")]
    assert len(emitted) == len(set(emitted)), emitted
    # An event may be lost only for the one patch in flight at the kill, never duplicated.
    assert len(emitted) >= len(names) - 1
    print(f"rolled out at SIGKILL: {at_kill}/6; after restart 6/6; events {len(emitted)}")


def _lease(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    result = cluster.kubectl("get", "lease", name, "-n", namespace, "-o", "json", check=False)
    spec: dict[str, Any] = json.loads(result.stdout)["spec"] if result.returncode == 0 else {}
    return spec


def test_sigkilled_leader_is_replaced_within_the_lease_duration(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=3)
    apply(cluster, workload("Deployment", "ha", namespace, [("app", image)], recorded={"app": v1}))
    wait_replicasets(cluster, namespace, "ha", 1)
    lease_name = f"kar-{secrets.token_hex(3)}"
    duration = 4
    config = write_config(
        tmp_path / "config.yaml",
        [namespace],
        cronSchedule="* * * * * *",
        digestCacheTtlSeconds=0,
        leaderElection={
            "enabled": True,
            "leaseName": lease_name,
            "leaseDurationSeconds": duration,
            "renewSeconds": 1,
        },
    )
    kubeconfig = namespaced_kubeconfig(cluster, namespace, tmp_path / "kubeconfig")
    a = start_cli(
        cluster, config, "reconcile", log_path=tmp_path / "a.log", kubeconfig=kubeconfig, POD_NAME="rep-a"
    )
    b = start_cli(
        cluster, config, "reconcile", log_path=tmp_path / "b.log", kubeconfig=kubeconfig, POD_NAME="rep-b"
    )
    try:
        holder = wait_for("a leader", lambda: _lease(cluster, namespace, lease_name).get("holderIdentity"))
        leader, standby, prefix = (a, b, "rep-b_") if holder.startswith("rep-a_") else (b, a, "rep-a_")
        time.sleep(1.5)  # a renewal or two
        killed_at = time.monotonic()
        _kill(leader)
        wait_for(
            "the standby to take over",
            lambda: _lease(cluster, namespace, lease_name).get("holderIdentity", "").startswith(prefix),
            timeout=duration * 3,
            interval=0.1,
        )
        takeover = time.monotonic() - killed_at
        # Expiry is judged from the standby's own observation of the last renewal, polled every
        # renewSeconds: at most the lease duration plus one renew interval (plus slack for kubectl polls).
        assert takeover <= duration + 1 + 2.0, takeover
        registry.push_image(unique_repo, "latest", seed=4)
        wait_replicasets(cluster, namespace, "ha", 2)
        [event] = events(cluster, namespace, "RolloutTriggered")
        assert event["reportingInstance"].startswith(prefix)
        assert standby.poll() is None
        print(f"takeover after SIGKILL of the leader: {takeover:.1f}s (lease {duration}s)")
    finally:
        for process in (a, b):
            _kill(process)
