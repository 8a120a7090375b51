"""Builders of workload objects and AdmissionReview bodies for the webhook's unit tests."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import orjson

ENABLED = {"kube-autorollout/enabled": "true"}
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
DIGEST_C = "sha256:" + "c" * 64

Spec = tuple[str, str] | tuple[str, str, str | None]


def _container(spec: Spec) -> dict[str, Any]:
    name, image = spec[0], spec[1]
    policy = spec[2] if len(spec) == 3 else "Always"
    container: dict[str, Any] = {"name": name, "image": image}
    if policy is not None:
        container["imagePullPolicy"] = policy
    return container


def workload(
    kind: str = "Deployment",
    *,
    name: str = "web",
    labels: dict[str, str] | None = None,
    containers: Sequence[Spec] = (("app", "reg.example:5000/team/app:latest"),),
    init: Sequence[Spec] = (),
    annotations: dict[str, str] | None = None,
    template_annotations: dict[str, str] | None = None,
    pull_secrets: Sequence[str] = (),
    replicas: int = 1,
) -> dict[str, Any]:
    """A defaulted-looking apps/v1 workload; labeled to opt in unless `labels` says otherwise."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "team",
        "labels": dict(ENABLED if labels is None else labels),
    }
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    pod_spec: dict[str, Any] = {"containers": [_container(c) for c in containers]}
    if init:
        pod_spec["initContainers"] = [_container(c) for c in init]
    if pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in pull_secrets]
    template: dict[str, Any] = {"metadata": {"labels": {"app": name}}, "spec": pod_spec}
    if template_annotations is not None:
        template["metadata"]["annotations"] = dict(template_annotations)
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": name}}, "template": template}
    if kind != "DaemonSet":
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata, "spec": spec}


def review(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    uid: str = "0b7f4c3e-1d2a-4f5e-9c8b-7a6d5e4f3c2b",
    group: str = "apps",
    version: str = "v1",
    kind: str | None = None,
    dry_run: bool = False,
    sub_resource: str | None = None,
) -> dict[str, Any]:
    """An AdmissionReview request as the API server sends it."""
    kind = kind or (obj or old or {}).get("kind", "Deployment")
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": f"{kind.lower()}s"},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "name": (obj or old or {}).get("metadata", {}).get("name", ""),
        "namespace": "team",
        "operation": operation,
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def body(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document)


def changed(obj: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(obj)
