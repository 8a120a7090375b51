"""Raw workload objects as the API server returns them, for the reconciler's unit tests."""

from __future__ import annotations

from typing import Any

from autorollout.registry.manifests import ManifestDigest

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
P_AMD64 = "sha256:" + "a" * 64
P_ARM64 = "sha256:" + "b" * 64
IMAGE = "registry.local:5000/team/app:latest"
SIDECAR = "registry.local:5000/team/sidecar:main"


def workload_object(
    *,
    kind: str = "Deployment",
    name: str = "app",
    namespace: str = "ns",
    containers: list[tuple[str, str]] | None = None,
    init_containers: list[tuple[str, str]] | None = None,
    annotations: dict[str, str] | None = None,
    template_annotations: dict[str, str] | None = None,
    template_metadata: bool = True,
    paused: bool = False,
    resource_version: str = "42",
    pull_secrets: list[str] | None = None,
    policy: str = "Always",
) -> dict[str, Any]:
    def spec_of(items: list[tuple[str, str]]) -> list[dict[str, str]]:
        return [{"name": n, "image": i, "imagePullPolicy": policy} for n, i in items]

    pod_spec: dict[str, Any] = {"containers": spec_of(containers or [("app", IMAGE)])}
    if init_containers:
        pod_spec["initContainers"] = spec_of(init_containers)
    if pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in pull_secrets]
    template: dict[str, Any] = {"spec": pod_spec}
    if template_metadata:
        template["metadata"] = {"labels": {"app": name}}
        if template_annotations is not None:
            template["metadata"]["annotations"] = template_annotations
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{name}",
        "resourceVersion": resource_version,
        "generation": 3,
        "labels": {"kube-autorollout/enabled": "true"},
    }
    if annotations is not None:
        metadata["annotations"] = annotations
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": name}}, "template": template}
    if paused:
        spec["paused"] = True
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata, "spec": spec}


def manifest(digest: str, *platforms: str) -> ManifestDigest:
    media = (
        "application/vnd.oci.image.index.v1+json"
        if platforms
        else "application/vnd.oci.image.manifest.v1+json"
    )
    return ManifestDigest(digest=digest, media_type=media, platform_digests=tuple(platforms))
