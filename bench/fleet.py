"""A fleet of labeled workloads for benchmarks: images pushed to the local registry, Deployments
created through the API with concurrency (not kubectl one by one), tags moved.

Shared by the benchmark scripts and by tests/e2e/test_bench_quick.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autorollout.annotations import DIGEST_PREFIX, ENABLED_LABEL
from autorollout.kube import KubeClient
from autorollout.kube.errors import ConflictError
from autorollout.kube.paths import workload_collection
from tests.harness.registry import LocalRegistry

CONTAINER = "app"


@dataclass(frozen=True)
class Image:
    """One benchmark image: `<registry>/<repository>:<tag>` and the digest it was pushed with."""

    reference: str
    repository: str
    tag: str
    digest: str


def push_images(registry: LocalRegistry, prefix: str, count: int, *, seed: int = 0) -> list[Image]:
    """Push `count` small images `<prefix>-<i>:latest`; returns them in order."""
    images = []
    pusher = registry.pusher()
    try:
        for i in range(count):
            repository = f"{prefix}-{i}"
            digest = pusher.push_image(repository, "latest", seed=seed * 1_000_003 + i)
            images.append(Image(f"{registry.host}/{repository}:latest", repository, "latest", digest))
    finally:
        pusher.close()
    return images


def move_tags(registry: LocalRegistry, images: Sequence[Image], *, seed: int) -> list[Image]:
    """Push a new image under each of `images`' tags; returns them with their new digests."""
    moved = []
    pusher = registry.pusher()
    try:
        for i, image in enumerate(images):
            digest = pusher.push_image(image.repository, image.tag, seed=seed * 1_000_003 + i + 500_000)
            moved.append(Image(image.reference, image.repository, image.tag, digest))
    finally:
        pusher.close()
    return moved


def deployment(
    name: str,
    namespace: str,
    image: Image,
    *,
    replicas: int = 0,
    recorded: bool = True,
    extra_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A labeled Deployment running `image`; `recorded` writes the digest annotation the webhook would."""
    annotations = {f"{DIGEST_PREFIX}{CONTAINER}": f"{image.reference}@{image.digest}"} if recorded else {}
    annotations.update(extra_annotations or {})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {ENABLED_LABEL: "true", "app": name},
            "annotations": annotations,
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": CONTAINER, "image": image.reference, "imagePullPolicy": "Always"}
                    ],
                    "terminationGracePeriodSeconds": 0,
                },
            },
        },
    }


def image_of(index: int, images: Sequence[Image]) -> Image:
    """The image workload number `index` runs: round robin over `images`."""
    return images[index % len(images)]


async def create_namespace(kube: KubeClient, name: str) -> None:
    """Create namespace `name` (fine if it exists)."""
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    with contextlib.suppress(ConflictError):
        await kube.create("/api/v1/namespaces", body)


async def create_deployments(
    kube: KubeClient,
    namespace: str,
    images: Sequence[Image],
    start: int,
    stop: int,
    *,
    replicas: int = 0,
    recorded: bool = True,
    concurrency: int = 24,
    prefix: str = "w",
    extra_annotations: Mapping[str, str] | None = None,
) -> None:
    """Create Deployments `<prefix>-<start>` .. `<prefix>-<stop - 1>` over `images`, concurrently."""
    gate = asyncio.Semaphore(concurrency)
    path = workload_collection("Deployment", namespace)

    async def one(i: int) -> None:
        body = deployment(
            f"{prefix}-{i:05d}",
            namespace,
            image_of(i, images),
            replicas=replicas,
            recorded=recorded,
            extra_annotations=extra_annotations,
        )
        async with gate:
            with contextlib.suppress(ConflictError):
                await kube.create(path, body)

    await asyncio.gather(*(one(i) for i in range(start, stop)))


def moved_workloads(count: int, images: Sequence[Image], moved: Sequence[Image]) -> int:
    """How many of workloads 0..count-1 run one of the `moved` images."""
    moved_refs = {m.reference for m in moved}
    return sum(1 for i in range(count) if image_of(i, images).reference in moved_refs)


async def fleet_settled(kube: KubeClient, namespace: str, count: int) -> bool:
    """True when `count` Deployments exist in `namespace` and their controller has observed each."""
    listing = await kube.list(workload_collection("Deployment", namespace))
    items = listing.get("items") or []
    return len(items) >= count and all(
        (d.get("status") or {}).get("observedGeneration") == d["metadata"].get("generation") for d in items
    )
