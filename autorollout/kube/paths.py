"""API paths of the objects kube-autorollout reads and writes."""

from __future__ import annotations

from typing import Final

WORKLOAD_RESOURCES: Final[dict[str, str]] = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
}


def workload_collection(kind: str, namespace: str | None = None) -> str:
    """`/apis/apps/v1[/namespaces/NS]/<resource>`; all namespaces when `namespace` is None."""
    resource = WORKLOAD_RESOURCES[kind]
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/apps/v1{scope}/{resource}"


def workload_path(kind: str, namespace: str, name: str) -> str:
    return f"{workload_collection(kind, namespace)}/{name}"


def core_collection(resource: str, namespace: str | None = None) -> str:
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"/api/v1{scope}/{resource}"


def core_path(resource: str, namespace: str, name: str) -> str:
    return f"{core_collection(resource, namespace)}/{name}"


def lease_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return f"{base}/{name}" if name else base
