"""Platform comparison (`policy.kube-autorollout/compare: platform`) end to end against the real
control plane and registry: a Node object reporting linux/amd64 (created through the API, its
nodeInfo written through the status subresource), a two-platform index where only the arm64
manifest moves (recorded, no rollout) and then the amd64 one (one rollout); and without RBAC for
nodes, index comparison with one Warning Event saying so."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autorollout.annotations import format_platforms
from autorollout.policy.platforms import NodePlatform
from reconciler.reconciler import Reconciler
from tests.e2e.reconciler_helpers import (
    apply,
    config_for,
    events,
    list_items,
    replicaset_count,
    run_cli,
    wait_replicasets,
    with_reconciler,
    workload,
    write_config,
)
from tests.harness.cluster import LocalCluster
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e

PLATFORMS = "platforms.kube-autorollout/app"
DIGEST = "digest.kube-autorollout/app"
COMPARE = {"policy.kube-autorollout/compare": "platform"}
NODE_INFO = {
    "machineID": "p16",
    "systemUUID": "p16",
    "bootID": "p16",
    "kernelVersion": "6.1.0",
    "osImage": "Debian GNU/Linux 12 (bookworm)",
    "containerRuntimeVersion": "containerd://1.7.24",
    "kubeletVersion": "v1.37.2",
    "kubeProxyVersion": "",
    "operatingSystem": "linux",
    "architecture": "amd64",
}


@contextlib.contextmanager
def fake_node(cluster: LocalCluster, architecture: str) -> Iterator[str]:
    """A Node object whose status reports linux/<architecture> (no kubelet behind it), deleted after."""
    name = f"p16-{architecture}-{secrets.token_hex(3)}"
    # Tainted: no DaemonSet of another test schedules a pod onto a node that runs nothing.
    taint = {"key": "kube-autorollout.test/no-kubelet", "value": "true", "effect": "NoSchedule"}
    manifest = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {"taints": [taint]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    status = json.dumps({"status": {"nodeInfo": NODE_INFO | {"architecture": architecture}}})
    try:
        cluster.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", status)
        yield name
    finally:
        cluster.kubectl("delete", "node", name, "--wait=false", check=False)


@pytest.fixture
def amd64_node(cluster: LocalCluster) -> Iterator[str]:
    with fake_node(cluster, "amd64") as name:
        yield name


def _annotations(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    [found] = [d for d in list_items(cluster, "deployments", namespace) if d["metadata"]["name"] == "app"]
    annotations: dict[str, str] = found["metadata"].get("annotations") or {}
    return annotations


def _once(cluster: LocalCluster, config: Path, kubeconfig: Path | None = None) -> list[dict[str, Any]]:
    result = run_cli(cluster, config, "reconcile", "--once", kubeconfig=kubeconfig)
    assert result.returncode == 0, result.stderr
    lines = []
    for line in result.stderr.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def _push_index(registry: LocalRegistry, repo: str, by_platform: dict[str, str]) -> str:
    pusher = registry.pusher()
    try:
        return pusher.push_index_over(repo, "latest", by_platform)
    finally:
        pusher.close()


def _push_platform(registry: LocalRegistry, repo: str, platform: str, seed: int) -> str:
    pusher = registry.pusher()
    try:
        return pusher.push_image(repo, None, seed=seed, platform=platform)
    finally:
        pusher.close()


def test_an_index_move_of_another_platform_is_recorded_and_one_of_the_nodes_platform_rolls_out(
    cluster: LocalCluster,
    registry: LocalRegistry,
    namespace: str,
    unique_repo: str,
    amd64_node: str,
    tmp_path: Path,
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1, by_platform = registry.push_index(unique_repo, "latest", ["linux/amd64", "linux/arm64"], seed=1601)
    manifest = workload("Deployment", "app", namespace, [("app", image)], recorded={"app": v1})
    manifest["metadata"]["annotations"].update(COMPARE)
    apply(cluster, manifest)
    wait_replicasets(cluster, namespace, "app", 1)
    config = write_config(tmp_path / "config.yaml", [namespace])

    def gets() -> int:  # GETs of the tag's manifest (the index body) by the product, not the harness
        return registry.request_count("GET", f"/v2/{unique_repo}/manifests/latest")

    # First cycle: the record of the index's node platform manifests (the baseline), no rollout.
    logs = _once(cluster, config)
    assert gets() == 1
    annotations = _annotations(cluster, namespace)
    assert annotations[DIGEST] == f"{image}@{v1}"
    assert annotations[PLATFORMS] == format_platforms(v1, {"linux/amd64": by_platform["linux/amd64"]})
    assert [m["images"] for m in logs if m["msg"].startswith("index bodies looked up")] == [1]
    # The steady state asks for no index body.
    logs = _once(cluster, config)
    assert not [m for m in logs if m["msg"].startswith("index bodies looked up")]
    assert gets() == 1  # a HEAD only

    # Only arm64 moves: the index digest moves, the node's platform does not.
    v2 = _push_index(
        registry,
        unique_repo,
        {
            "linux/amd64": by_platform["linux/amd64"],
            "linux/arm64": _push_platform(registry, unique_repo, "linux/arm64", 1602),
        },
    )
    assert v2 != v1
    shown = run_cli(cluster, config, "status")
    assert shown.returncode == 0, shown.stderr
    assert "recorded only: platforms linux/amd64 unchanged" in shown.stdout, shown.stdout
    logs = _once(cluster, config)
    assert any(m["msg"] == "record without rollout: platforms linux/amd64 unchanged" for m in logs), logs
    annotations = _annotations(cluster, namespace)
    assert annotations[DIGEST] == f"{image}@{v2}"  # the index digest, as the kubelet's imageID
    assert annotations[PLATFORMS] == format_platforms(v2, {"linux/amd64": by_platform["linux/amd64"]})
    assert replicaset_count(cluster, namespace, "app") == 1
    assert not events(cluster, namespace, "RolloutTriggered")
    assert gets() == 3  # one for `status`, one for the cycle

    # amd64 moves: one rollout, as in index mode.
    amd64 = _push_platform(registry, unique_repo, "linux/amd64", 1603)
    v3 = _push_index(registry, unique_repo, {"linux/amd64": amd64, "linux/arm64": by_platform["linux/arm64"]})
    _once(cluster, config)
    wait_replicasets(cluster, namespace, "app", 2)
    annotations = _annotations(cluster, namespace)
    assert annotations[DIGEST] == f"{image}@{v3}"
    assert annotations[PLATFORMS] == format_platforms(v3, {"linux/amd64": amd64})
    assert len(events(cluster, namespace, "RolloutTriggered")) == 1
    _once(cluster, config)  # and exactly once
    assert gets() == 4
    assert replicaset_count(cluster, namespace, "app") == 2
    assert len(events(cluster, namespace, "RolloutTriggered")) == 1


def _namespaced_account(cluster: LocalCluster, namespace: str) -> Path:
    """A ServiceAccount with the chart's namespaced rules and no access to nodes."""
    cluster.kubectl("create", "serviceaccount", "reconciler", "-n", namespace)
    rules = [
        ("deployments.apps,statefulsets.apps,daemonsets.apps", "get,list,watch,patch"),
        ("pods", "get,list"),
        ("replicasets.apps", "list"),
        ("events", "create,patch"),
    ]
    for i, (resources, verbs) in enumerate(rules):
        cluster.kubectl(
            "create", "role", f"r{i}", "-n", namespace, f"--resource={resources}", f"--verb={verbs}"
        )
        cluster.kubectl(
            "create",
            "rolebinding",
            f"r{i}",
            "-n",
            namespace,
            f"--role=r{i}",
            f"--serviceaccount={namespace}:reconciler",
        )
    return cluster.service_account_kubeconfig(namespace, "reconciler")


def test_without_rbac_for_nodes_platform_mode_compares_the_index_and_says_so_once(
    cluster: LocalCluster,
    registry: LocalRegistry,
    namespace: str,
    unique_repo: str,
    amd64_node: str,
    tmp_path: Path,
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1, by_platform = registry.push_index(unique_repo, "latest", ["linux/amd64", "linux/arm64"], seed=1611)
    manifest = workload("Deployment", "app", namespace, [("app", image)], recorded={"app": v1})
    manifest["metadata"]["annotations"].update(COMPARE)
    manifest["metadata"]["annotations"][PLATFORMS] = format_platforms(
        v1, {"linux/amd64": by_platform["linux/amd64"]}
    )
    apply(cluster, manifest)
    wait_replicasets(cluster, namespace, "app", 1)
    kubeconfig = _namespaced_account(cluster, namespace)
    config = write_config(tmp_path / "config.yaml", [namespace])

    # Only arm64 moves; without node information that is an index move, and it rolls out.
    arm64 = _push_platform(registry, unique_repo, "linux/arm64", 1612)
    v2 = _push_index(registry, unique_repo, {"linux/amd64": by_platform["linux/amd64"], "linux/arm64": arm64})
    logs = _once(cluster, config, kubeconfig)
    fallback = [m for m in logs if m["msg"] == "platform comparison falls back to the index digest"]
    assert len(fallback) == 1, logs
    assert "nodes not readable" in fallback[0]["reason"]
    assert not [m for m in logs if m["msg"].startswith("index bodies looked up")]  # no GET for nothing
    wait_replicasets(cluster, namespace, "app", 2)
    assert _annotations(cluster, namespace)[DIGEST] == f"{image}@{v2}"
    [warning] = events(cluster, namespace, "PlatformComparisonUnavailable")
    assert warning["type"] == "Warning"
    assert warning["message"].endswith("comparing the index digest"), warning["message"]
    assert len(events(cluster, namespace, "RolloutTriggered")) == 1


def test_node_platforms_are_listed_once_and_then_followed_by_the_watch(
    cluster: LocalCluster, namespace: str, amd64_node: str
) -> None:
    arm64 = NodePlatform("linux", "arm64")

    async def until(reconciler: Reconciler, present: bool) -> None:
        deadline = time.monotonic() + 30
        while (arm64 in (await reconciler.nodes.platforms() or ())) is not present:
            assert time.monotonic() < deadline, (
                f"arm64 {'not ' if present else ''}seen: {reconciler.nodes.describe()}"
            )
            await asyncio.sleep(0.1)

    async def body(reconciler: Reconciler) -> None:
        first = await reconciler.nodes.platforms()
        assert first is not None
        assert NodePlatform("linux", "amd64") in first
        listed = reconciler.kube.requests["GET"]
        with fake_node(cluster, "arm64"):
            await until(reconciler, present=True)
        await until(reconciler, present=False)
        assert reconciler.kube.requests["GET"] == listed, "nodes were listed again"
        assert reconciler.kube.requests["GET watch"] >= 1

    with_reconciler(cluster, config_for(namespace), body, watch=True)
