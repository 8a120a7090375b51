"""Kubernetes API faults against the real control plane: kube-apiserver restarted mid-cycle (watches
break and come back expired: 410 Gone, relist), and throttling (429 with Retry-After) injected by a
fault proxy the product's kubeconfig points at. Expected: the cycle resumes, no lost update, no
duplicate rollout."""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from autorollout.kube import KubeClient
from autorollout.kube.errors import GoneError, TooManyRequestsError
from tests.e2e.reconciler_helpers import (
    apply,
    events,
    log_messages,
    replicaset_count,
    run_cli,
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

DIGEST_KEY = "digest.kube-autorollout/app"


def _cycles(log: Path) -> int:
    return sum("cycle finished" in m.get("msg", "") for m in log_messages(log))


def test_apiserver_restart_mid_cycle_resumes_without_lost_or_duplicate_rollouts(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=1)
    names = [f"app{i}" for i in range(4)]
    for name in names:
        apply(cluster, workload("Deployment", name, namespace, [("app", image)], recorded={"app": v1}))
    for name in names:
        wait_replicasets(cluster, namespace, name, 1)
    config = write_config(
        tmp_path / "config.yaml",
        [namespace],
        cronSchedule="* * * * * *",
        digestCacheTtlSeconds=0,
        reconciler={"maxPatchesPerSecond": 0.5},  # one rollout every 2 s: the restart lands mid-cycle
    )
    log = tmp_path / "reconcile.log"
    process = start_cli(cluster, config, "reconcile", log_path=log)
    try:
        wait_for("first cycle", lambda: _cycles(log) >= 1)
        v2 = registry.push_image(unique_repo, "latest", seed=2)
        wait_for(
            "the first rollout", lambda: any(replicaset_count(cluster, namespace, n) == 2 for n in names)
        )
        rolled_before = sum(replicaset_count(cluster, namespace, n) == 2 for n in names)
        downtime = cluster.restart_apiserver(down_seconds=1.0)
        for name in names:
            wait_for(f"{name} rolled out", lambda n=name: replicaset_count(cluster, namespace, n) == 2, 60)

        # A workload created after the restart is seen through the re-established watch.
        apply(cluster, workload("Deployment", "late", namespace, [("app", image)], recorded={"app": v1}))
        wait_for("late rolled out", lambda: replicaset_count(cluster, namespace, "late") == 2, 60)
        settled = _cycles(log)
        wait_for("three more cycles", lambda: _cycles(log) >= settled + 3, 30)

        for name in [*names, "late"]:
            assert replicaset_count(cluster, namespace, name) == 2, f"{name}: rolled out once"
            assert get(cluster, "Deployment", namespace, name)["metadata"]["annotations"][DIGEST_KEY] == (
                f"{image}@{v2}"
            )
        rollout_events = events(cluster, namespace, "RolloutTriggered")
        per_workload = [e["involvedObject"]["name"] for e in rollout_events]
        assert len(per_workload) == len(set(per_workload)), per_workload
        messages = [m.get("msg", "") for m in log_messages(log)]
        # The watches broke while the server was down and resumed (a fresh watch cache answers the
        # old resourceVersion with 410 Gone, which relists).
        assert any(m in ("watch failed", "watch expired; relisting") for m in messages)
        assert process.poll() is None, "the process survived the restart"
        print(
            f"apiserver down {downtime:.1f}s; rolled out before restart {rolled_before}/4;"
            f" events {len(rollout_events)}; relists {messages.count('watch expired; relisting')}"
        )
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_expired_resource_version_is_410_and_the_cache_relists(cluster: LocalCluster, namespace: str) -> None:
    """A watch from a resourceVersion the server no longer has is a GoneError (the product relists);
    forced here by watching from the oldest possible version after a restart emptied the watch cache."""

    async def scenario() -> None:
        async with KubeClient.from_kubeconfig(str(cluster.kubeconfig)) as kube:
            path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
            with pytest.raises(GoneError):
                async for _ in kube.watch(path, resource_version="1", timeout_seconds=5):
                    pass

    asyncio.run(scenario())


@pytest.fixture
def api_proxy(cluster: LocalCluster) -> Iterator[FaultProxy]:
    """An HTTP front door to the API server, authenticating upstream as the admin."""
    pki = cluster.run_dir / "pki"
    verify = ssl.create_default_context(cafile=str(cluster.ca_file))
    with FaultProxy(
        cluster.server, upstream_verify=verify, upstream_cert=(pki / "admin.crt", pki / "admin.key")
    ) as proxy:
        yield proxy


def _proxied_kubeconfig(proxy: FaultProxy, namespace: str, path: Path) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "proxy", "cluster": {"server": proxy.url}}],
        "users": [{"name": "nobody", "user": {}}],
        "contexts": [
            {"name": "proxy", "context": {"cluster": "proxy", "user": "nobody", "namespace": namespace}}
        ],
        "current-context": "proxy",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_api_throttling_is_waited_out_and_rolls_out_once(
    cluster: LocalCluster,
    registry: LocalRegistry,
    namespace: str,
    unique_repo: str,
    tmp_path: Path,
    api_proxy: FaultProxy,
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=3)
    apply(cluster, workload("Deployment", "busy", namespace, [("app", image)], recorded={"app": v1}))
    wait_replicasets(cluster, namespace, "busy", 1)
    v2 = registry.push_image(unique_repo, "latest", seed=4)
    kubeconfig = _proxied_kubeconfig(api_proxy, namespace, tmp_path / "proxied.kubeconfig")
    config = write_config(tmp_path / "config.yaml", [namespace])

    # Five 429s on PATCH: the client waits out three (Retry-After: 1 each), the actuator pauses and
    # tries again, which meets the fifth and then gets through.
    api_proxy.fault, api_proxy.status, api_proxy.retry_after = "status", 429, "1"
    api_proxy.methods, api_proxy.times = {"PATCH"}, 5
    result = run_cli(cluster, config, "reconcile", "--once", kubeconfig=kubeconfig)
    assert result.returncode == 0, result.stdout + result.stderr
    patches = [r.at for r in api_proxy.requests if r.method == "PATCH"]
    assert len(patches) == 6
    gaps = [b - a for a, b in itertools.pairwise(patches)]
    assert min(gaps) >= 0.9, gaps  # Retry-After honoured every time
    wait_replicasets(cluster, namespace, "busy", 2)
    assert (
        get(cluster, "Deployment", namespace, "busy")["metadata"]["annotations"][DIGEST_KEY]
        == f"{image}@{v2}"
    )
    assert len(events(cluster, namespace, "RolloutTriggered")) == 1

    # Again, unthrottled: nothing left to do, no second rollout.
    api_proxy.fault = "none"
    before = api_proxy.count("PATCH")
    result = run_cli(cluster, config, "reconcile", "--once", kubeconfig=kubeconfig)
    assert result.returncode == 0, result.stdout + result.stderr
    assert api_proxy.count("PATCH") == before
    assert replicaset_count(cluster, namespace, "busy") == 2

    # Throttled for good: the client gives up after 1 + 3 attempts, the error names the 429.
    api_proxy.fault, api_proxy.times, api_proxy.retry_after = "status", None, "0"
    before = api_proxy.count("PATCH")

    async def persistent() -> None:
        async with KubeClient.from_kubeconfig(str(kubeconfig)) as kube:
            with pytest.raises(TooManyRequestsError):
                await kube.patch(f"/apis/apps/v1/namespaces/{namespace}/deployments/busy", [])

    asyncio.run(persistent())
    assert api_proxy.count("PATCH") - before == 4

    # A moved tag while throttled for good: two rounds of the client's four attempts, then the
    # workload waits for the next cycle; nothing rolled out.
    registry.push_image(unique_repo, "latest", seed=5)
    before = api_proxy.count("PATCH")
    result = run_cli(cluster, config, "reconcile", "--once", kubeconfig=kubeconfig)
    assert result.returncode == 1, result.stdout + result.stderr
    assert api_proxy.count("PATCH") - before == 8
    assert replicaset_count(cluster, namespace, "busy") == 2
    print(f"PATCH attempts: transient 6 (5 throttled), persistent {api_proxy.count('PATCH') - before}")
