"""The raw-JSON KubeClient against the real local API server."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from autorollout.kube import (
    ConflictError,
    InvalidError,
    KubeClient,
    KubeNotFoundError,
    core_path,
    workload_collection,
    workload_path,
)
from autorollout.kube.pull_secrets import PullSecretReader
from tests.harness.cluster import LocalCluster

pytestmark = pytest.mark.e2e


def _deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"kube-autorollout/enabled": "true"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "example.test/app:main"}]},
            },
        },
    }


def test_create_list_patch_and_errors(cluster: LocalCluster, namespace: str) -> None:
    async def scenario() -> None:
        async with KubeClient.from_kubeconfig(str(cluster.kubeconfig)) as kube:
            created = await kube.create(workload_collection("Deployment", namespace), _deployment("one"))
            assert created["metadata"]["uid"]
            listed = await kube.list(
                workload_collection("Deployment", namespace),
                {"labelSelector": "kube-autorollout/enabled=true"},
            )
            assert [d["metadata"]["name"] for d in listed["items"]] == ["one"]

            path = workload_path("Deployment", namespace, "one")
            guard = {"op": "test", "path": "/metadata/labels/kube-autorollout~1enabled", "value": "true"}
            patched = await kube.patch(
                path, [guard, {"op": "add", "path": "/metadata/annotations", "value": {"a": "1"}}]
            )
            # (the Deployment controller adds its revision annotation whenever it gets to it)
            assert patched["metadata"]["annotations"]["a"] == "1"

            # A guard that no longer holds: the API server rejects the whole patch.
            with pytest.raises(InvalidError):
                await kube.patch(
                    path, [{**guard, "value": "false"}, {"op": "remove", "path": "/metadata/annotations"}]
                )
            assert (await kube.get(path))["metadata"]["annotations"]["a"] == "1"
            stale = dict(created)
            with pytest.raises(ConflictError):
                await kube.replace(path, stale)
            with pytest.raises(KubeNotFoundError):
                await kube.get(workload_path("Deployment", namespace, "missing"))
            assert kube.requests["PATCH"] == 2

    asyncio.run(scenario())


def test_watch_sees_changes_from_a_resource_version(cluster: LocalCluster, namespace: str) -> None:
    async def scenario() -> list[tuple[str, str]]:
        async with KubeClient.from_kubeconfig(str(cluster.kubeconfig)) as kube:
            collection = workload_collection("Deployment", namespace)
            start = (await kube.list(collection))["metadata"]["resourceVersion"]
            await kube.create(collection, _deployment("watched"))
            seen: list[tuple[str, str]] = []
            async for kind, obj in kube.watch(collection, resource_version=start, timeout_seconds=5):
                seen.append((kind, obj["metadata"]["name"]))
                if kind == "ADDED":
                    break
            return seen

    assert asyncio.run(scenario()) == [("ADDED", "watched")]


def test_pull_secret_reader_reads_and_caches(cluster: LocalCluster, namespace: str) -> None:
    config = {"auths": {"registry.example.test:5000": {"username": "ci", "password": "s3cr3t-pw"}}}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "pull"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(secret))

    async def scenario() -> tuple[list[Any], int]:
        async with KubeClient.from_kubeconfig(str(cluster.kubeconfig)) as kube:
            reader = PullSecretReader(kube, ttl=60)
            first = await reader.read(namespace, ["pull", "absent"])
            again = await reader.read(namespace, ["pull", "absent"])
            assert first == again
            return first, kube.requests["GET"]

    found, gets = asyncio.run(scenario())
    assert len(found) == 1
    creds = found[0]["registry.example.test:5000"]
    assert creds.username == "ci"
    assert creds.password == "s3cr3t-pw"
    assert "s3cr3t-pw" not in repr(found)
    assert gets == 2  # one per secret name; the second read came from the cache
    assert core_path("secrets", namespace, "pull").endswith("/secrets/pull")
