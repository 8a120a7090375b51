"""What a workload's pods run, for adoption only: the newest ready pod's `containerStatuses[].imageID`.

Steady-state cycles never call this: a workload whose digests are recorded is compared with its records.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from autorollout.kube import KubeClient, core_collection
from reconciler.records import Workload

_DIGEST_ALGORITHMS = ("sha256:", "sha384:", "sha512:")


def digest_of_image_id(image_id: str) -> str | None:
    """The repo digest in an imageID (`docker-pullable://x@sha256:..`, `host/x@sha256:..`), else None.

    A bare `sha256:..` (Docker's local image ID, not a registry digest) is not comparable: None.
    """
    _, at, digest = image_id.rpartition("@")
    if not at or not digest.startswith(_DIGEST_ALGORITHMS):
        return None
    return digest


def _is_ready(pod: dict[str, Any]) -> bool:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())


def newest_ready_pod(pods: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The most recently created Running+Ready pod that is not being deleted."""
    ready = [p for p in pods if isinstance(p, dict) and _is_ready(p)]
    if not ready:
        return None
    return max(
        ready,
        key=lambda p: (str((p.get("metadata") or {}).get("creationTimestamp") or ""), p["metadata"]["name"]),
    )


def running_digests(pod: dict[str, Any]) -> dict[str, str]:
    """Container name -> repo digest the kubelet reported, for containers and init containers."""
    status = pod.get("status") or {}
    found: dict[str, str] = {}
    for field in ("initContainerStatuses", "containerStatuses"):
        for entry in status.get(field) or ():
            name, image_id = entry.get("name"), entry.get("imageID")
            if isinstance(name, str) and isinstance(image_id, str):
                digest = digest_of_image_id(image_id)
                if digest is not None:
                    found[name] = digest
    return found


async def fetch_running_digests(kube: KubeClient, workload: Workload) -> dict[str, str]:
    """What the newest ready pod of `workload` runs; empty when it has no ready pod (or no selector)."""
    selector = workload.label_selector()
    if not selector:
        return {}
    listing = await kube.list(core_collection("pods", workload.namespace), {"labelSelector": selector})
    pod = newest_ready_pod(listing.get("items") or ())
    return running_digests(pod) if pod is not None else {}
