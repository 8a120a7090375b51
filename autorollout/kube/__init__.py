"""Kubernetes API access: connection loading, a raw-JSON async client, paths and pull secrets."""

from autorollout.kube.client import JSON_PATCH, MERGE_PATCH, JsonObject, KubeClient
from autorollout.kube.connection import ConnectionSettings, load_connection
from autorollout.kube.errors import (
    ConflictError,
    GoneError,
    InvalidError,
    KubeApiError,
    KubeConfigError,
    KubeError,
    KubeNotFoundError,
    KubeUnreachableError,
    TooManyRequestsError,
)
from autorollout.kube.paths import (
    WORKLOAD_RESOURCES,
    core_collection,
    core_path,
    lease_path,
    workload_collection,
    workload_path,
)

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "WORKLOAD_RESOURCES",
    "ConflictError",
    "ConnectionSettings",
    "GoneError",
    "InvalidError",
    "JsonObject",
    "KubeApiError",
    "KubeClient",
    "KubeConfigError",
    "KubeError",
    "KubeNotFoundError",
    "KubeUnreachableError",
    "TooManyRequestsError",
    "core_collection",
    "core_path",
    "lease_path",
    "load_connection",
    "workload_collection",
    "workload_path",
]
