"""What a workload's own pods run, for adoption only: `containerStatuses[].imageID` of its Ready pods.

A pod counts only when its controller ownerReference leads to the workload (a Deployment's through the
ReplicaSet `<name>-<pod-template-hash>` that the Deployment controls; a StatefulSet's or DaemonSet's
directly, by uid), so a stranger's pod under an overlapping selector is never read. Steady-state cycles
never call this: a workload whose digests are recorded is compared with its records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autorollout.kube import KubeClient, core_collection
from reconciler.workload import Workload

_DIGEST_ALGORITHMS = ("sha256:", "sha384:", "sha512:")
_TEMPLATE_HASH = "pod-template-hash"
_REPLICASETS = "/apis/apps/v1/namespaces/{namespace}/replicasets"


@dataclass(frozen=True, slots=True)
class PodReport:
    """What the workload's own pods say: how many there are, how many are Ready, and what runs.

    `images` maps a container to the repo digest the newest Ready pod reporting a non-empty imageID for
    it runs (None when that imageID is no registry digest); a container no Ready pod reports is absent.
    """

    pods: int = 0
    ready: int = 0
    images: Mapping[str, str | None] = field(default_factory=dict)


def digest_of_image_id(image_id: str) -> str | None:
    """The repo digest in an imageID (`docker-pullable://x@sha256:..`, `host/x@sha256:..`), else None.

    A bare `sha256:..` (Docker's local image ID, not a registry digest) is not comparable: None.
    """
    _, at, digest = image_id.rpartition("@")
    if not at or not digest.startswith(_DIGEST_ALGORITHMS):
        return None
    return digest


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The ownerReference marked `controller: true`, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


def controlled_replicasets(workload: Workload, replicasets: Iterable[dict[str, Any]]) -> dict[str, str]:
    """uid -> name of the ReplicaSets whose controller is this Deployment (by kind and uid)."""
    found: dict[str, str] = {}
    for rs in replicasets:
        ref = controller_of(rs)
        meta = rs.get("metadata") or {}
        if ref and ref.get("kind") == "Deployment" and ref.get("uid") == workload.uid and meta.get("uid"):
            found[str(meta["uid"])] = str(meta.get("name"))
    return found


def is_owned(workload: Workload, pod: dict[str, Any], replicasets: Mapping[str, str]) -> bool:
    """Whether the pod's controller leads to `workload`; `replicasets` from `controlled_replicasets`."""
    ref = controller_of(pod)
    if ref is None or not workload.uid:
        return False
    if workload.kind != "Deployment":
        return ref.get("kind") == workload.kind and ref.get("uid") == workload.uid
    template_hash = ((pod.get("metadata") or {}).get("labels") or {}).get(_TEMPLATE_HASH)
    uid = ref.get("uid")
    return (
        ref.get("kind") == "ReplicaSet"
        and bool(template_hash)
        and ref.get("name") == f"{workload.name}-{template_hash}"
        and isinstance(uid, str)
        and replicasets.get(uid) == ref.get("name")
    )


def is_ready(pod: dict[str, Any]) -> bool:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())


def _created(pod: dict[str, Any]) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def _reported_images(pod: dict[str, Any]) -> dict[str, str | None]:
    """Container name -> repo digest (None: not a registry digest), for non-empty imageIDs only."""
    status = pod.get("status") or {}
    found: dict[str, str | None] = {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for entry in status.get(key) or ():
            name, image_id = entry.get("name"), entry.get("imageID")
            if isinstance(name, str) and isinstance(image_id, str) and image_id:
                found[name] = digest_of_image_id(image_id)
    return found


def pod_report(
    workload: Workload, pods: Iterable[dict[str, Any]], replicasets: Mapping[str, str] | None = None
) -> PodReport:
    """What `workload`'s own pods among `pods` report; the newest Ready pod speaks per container."""
    owned = [p for p in pods if isinstance(p, dict) and is_owned(workload, p, replicasets or {})]
    ready = sorted((p for p in owned if is_ready(p)), key=_created, reverse=True)
    images: dict[str, str | None] = {}
    for pod in ready:
        for name, digest in _reported_images(pod).items():
            images.setdefault(name, digest)
    return PodReport(pods=len(owned), ready=len(ready), images=images)


async def _list_pods(kube: KubeClient, workload: Workload) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The pods under the workload's selector, and (Deployment) the ReplicaSets it controls."""
    selector = workload.label_selector()
    if not selector:
        return [], {}
    query = {"labelSelector": selector}
    listing = await kube.list(core_collection("pods", workload.namespace), query)
    pods = list(listing.get("items") or ())
    replicasets: dict[str, str] = {}
    if workload.kind == "Deployment" and pods:
        # The ReplicaSets carry the template's labels, so the Deployment's selector finds them.
        found = await kube.list(_REPLICASETS.format(namespace=workload.namespace), query)
        replicasets = controlled_replicasets(workload, found.get("items") or ())
    return pods, replicasets


async def read_pods(kube: KubeClient, workload: Workload) -> PodReport:
    """List the pods under the workload's selector (and a Deployment's ReplicaSets) and report its own."""
    pods, replicasets = await _list_pods(kube, workload)
    return pod_report(workload, pods, replicasets)


async def own_pods(kube: KubeClient, workload: Workload) -> list[dict[str, Any]]:
    """The workload's own pods (raw), as `read_pods` finds them: for the health watch's verdicts."""
    pods, replicasets = await _list_pods(kube, workload)
    return [p for p in pods if isinstance(p, dict) and is_owned(workload, p, replicasets)]
