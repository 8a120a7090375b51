"""Two `kube-autorollout reconcile` processes with leader election: only the Lease holder patches; a
stopped leader releases the Lease and the standby takes over."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from autorollout.cli.reconcile import open_reconciler
from autorollout.config import Config
from reconciler.plan import WorkloadPlan
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
from tests.e2e.webhook_process import get
from tests.harness.cluster import LocalCluster
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e


def lease(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    result = cluster.kubectl("get", "lease", name, "-n", namespace, "-o", "json", check=False)
    spec: dict[str, Any] = json.loads(result.stdout)["spec"] if result.returncode == 0 else {}
    return spec


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=20)


def test_only_the_lease_holder_rolls_out_and_a_standby_takes_over(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=1)
    apply(cluster, workload("Deployment", "ha", namespace, [("app", image)], recorded={"app": v1}))
    wait_replicasets(cluster, namespace, "ha", 1)
    lease_name = f"kar-{secrets.token_hex(3)}"
    config = write_config(
        tmp_path / "config.yaml",
        [namespace],
        cronSchedule="* * * * * *",
        digestCacheTtlSeconds=0,
        leaderElection={
            "enabled": True,
            "leaseName": lease_name,
            "leaseDurationSeconds": 4,
            "renewSeconds": 1,
        },
    )
    kubeconfig = namespaced_kubeconfig(cluster, namespace, tmp_path / "kubeconfig")  # the Lease lives here
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b")}
    a = start_cli(
        cluster, config, "reconcile", log_path=logs["a"], kubeconfig=kubeconfig, POD_NAME="reconciler-a"
    )
    processes = [a]
    try:
        wait_for(
            "a to hold the lease",
            lambda: (
                lease(cluster, namespace, lease_name).get("holderIdentity", "").startswith("reconciler-a_")
            ),
        )
        b = start_cli(
            cluster, config, "reconcile", log_path=logs["b"], kubeconfig=kubeconfig, POD_NAME="reconciler-b"
        )
        processes.append(b)
        wait_for("b to stand by", lambda: any("standing by" in m["msg"] for m in log_messages(logs["b"])))

        v2 = registry.push_image(unique_repo, "latest", seed=2)
        wait_replicasets(cluster, namespace, "ha", 2)
        wait_for(
            "a few more cycles of the leader",
            lambda: sum("cycle finished" in m["msg"] for m in log_messages(logs["a"])) >= 4,
        )

        [event] = events(cluster, namespace, "RolloutTriggered")
        assert event["reportingInstance"].startswith("reconciler-a_")
        assert v2 in event["message"]
        assert not any("cycle finished" in m["msg"] for m in log_messages(logs["b"]))  # b never reconciled
        assert replicaset_count(cluster, namespace, "ha") == 2

        assert stop(a) == 0
        assert any("lease released" in m["msg"] for m in log_messages(logs["a"]))
        wait_for(
            "b to take over",
            lambda: (
                lease(cluster, namespace, lease_name).get("holderIdentity", "").startswith("reconciler-b_")
            ),
            timeout=10,
        )

        v3 = registry.push_image(unique_repo, "latest", seed=3)
        wait_replicasets(cluster, namespace, "ha", 3)
        rollouts = events(cluster, namespace, "RolloutTriggered")
        assert len(rollouts) == 2
        [second] = [e for e in rollouts if v3 in e["message"]]
        assert second["reportingInstance"].startswith("reconciler-b_")
        assert (
            get(cluster, "Deployment", namespace, "ha")["metadata"]["annotations"][
                "digest.kube-autorollout/app"
            ]
            == f"{image}@{v3}"
        )

        assert stop(b) == 0
        assert lease(cluster, namespace, lease_name).get("holderIdentity", "") == ""
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_losing_the_lease_abandons_the_cycle_before_its_patch(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=4)
    apply(cluster, workload("Deployment", "contested", namespace, [("app", image)], recorded={"app": v1}))
    wait_replicasets(cluster, namespace, "contested", 1)
    registry.push_image(unique_repo, "latest", seed=5)
    lease_name = f"kar-{secrets.token_hex(3)}"
    config = Config.model_validate(
        {
            "cronSchedule": "* * * * * *",
            "reconciler": {"namespaces": [namespace]},
            "leaderElection": {
                "enabled": True,
                "leaseName": lease_name,
                "leaseDurationSeconds": 6,
                "renewSeconds": 1,
            },
        }
    )
    kubeconfig = namespaced_kubeconfig(cluster, namespace, tmp_path / "kubeconfig")
    reached_after_loss: list[str] = []

    def steal_lease() -> None:
        # Another replica takes over (as after a network partition): a live lease in its name.
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {
            "holderIdentity": "intruder",
            "renewTime": now,
            "acquireTime": now,
            "leaseDurationSeconds": 60,
        }
        cluster.kubectl(
            "patch", "lease", lease_name, "-n", namespace, "--type=merge", "-p", json.dumps({"spec": spec})
        )

    async def main() -> None:
        async with open_reconciler(config, str(kubeconfig)) as reconciler:
            elector = reconciler.elector
            assert elector is not None

            async def before_act(plan: WorkloadPlan) -> None:
                # Planned a rollout while leading; the lease is lost before the patch goes out.
                await asyncio.to_thread(steal_lease)
                async with asyncio.timeout(10):
                    await elector.not_leading.wait()
                await asyncio.sleep(2)  # the cycle must be cancelled while waiting here
                reached_after_loss.append(plan.workload.name)

            reconciler.cycle.before_act = before_act
            stop = asyncio.Event()
            task = asyncio.create_task(reconciler.run_forever(stop))
            await asyncio.wait_for(elector.not_leading.wait(), timeout=30)  # not yet leading
            await asyncio.wait_for(elector.leading.wait(), timeout=30)
            await asyncio.wait_for(elector.not_leading.wait(), timeout=30)  # lost it mid-cycle
            await asyncio.sleep(3)  # standing by: no cycle runs
            assert not elector.is_leader
            stop.set()
            await asyncio.wait_for(task, timeout=20)

    asyncio.run(main())

    assert reached_after_loss == []
    assert events(cluster, namespace, "RolloutTriggered") == []
    assert replicaset_count(cluster, namespace, "contested") == 1
    assert lease(cluster, namespace, lease_name)["holderIdentity"] == "intruder"  # not released: not ours
