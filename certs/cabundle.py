"""The MutatingWebhookConfiguration of the webhook: render it (as the chart does), apply it, and
write a CA bundle into an existing one.

Scope and cost: only labeled workloads are sent (`objectSelector`), optionally only from selected
namespaces; an UPDATE that leaves the pod template alone (labels, replicas through the main
resource, metadata) is filtered out by a `matchConditions` CEL expression before the API server
calls the webhook at all. The reconciler's own rollout patch does change the template (restartedAt)
and does reach the webhook, which recognises it and keeps the digests it wrote: zero registry lookups.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from autorollout.annotations import ENABLED_LABEL
from autorollout.errors import AutorolloutError
from autorollout.kube import JSON_PATCH, ConflictError, InvalidError, KubeClient

API_VERSION: Final = "admissionregistration.k8s.io/v1"
KIND: Final = "MutatingWebhookConfiguration"
WEBHOOK_NAME: Final = "workloads.kube-autorollout.io"
WEBHOOK_PATH: Final = "/mutate"
DEFAULT_TIMEOUT_SECONDS: Final = 5
_PATH_PREFIX: Final = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
_PATCH_ATTEMPTS: Final = 5

TEMPLATE_CHANGED_CONDITION: Final = {
    "name": "pod-template-created-or-changed",
    "expression": (
        "request.operation != 'UPDATE' || !has(oldObject.spec) || !has(object.spec)"
        " || !has(oldObject.spec.template) || !has(object.spec.template)"
        " || object.spec.template != oldObject.spec.template"
    ),
}


class WebhookConfigError(AutorolloutError):
    """The webhook configuration cannot be rendered or written."""


@dataclass(frozen=True, slots=True)
class ServiceTarget:
    """The in-cluster Service the API server calls the webhook through."""

    namespace: str
    name: str
    port: int = 443
    path: str = WEBHOOK_PATH


def configuration_path(name: str) -> str:
    return f"{_PATH_PREFIX}/{name}"


def encode_ca_bundle(ca_pem: bytes) -> str:
    """The `caBundle` field value: base64 of the PEM CA certificate(s)."""
    if b"-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise WebhookConfigError("the CA file holds no PEM certificate")
    return base64.b64encode(ca_pem).decode("ascii")


def client_config(
    *, url: str | None = None, service: ServiceTarget | None = None, ca_pem: bytes | None = None
) -> dict[str, Any]:
    """`clientConfig` for exactly one of `url` (https://host:port/mutate) or `service`."""
    if (url is None) == (service is None):
        raise WebhookConfigError("give exactly one of a URL or a Service for the webhook")
    config: dict[str, Any]
    if url is not None:
        if not url.startswith("https://"):
            raise WebhookConfigError(f"webhook URL must start with https://, got {url!r}")
        config = {"url": url}
    else:
        assert service is not None
        config = {
            "service": {
                "namespace": service.namespace,
                "name": service.name,
                "path": service.path,
                "port": service.port,
            }
        }
    if ca_pem is not None:
        config["caBundle"] = encode_ca_bundle(ca_pem)
    return config


def render_webhook_configuration(
    name: str,
    *,
    url: str | None = None,
    service: ServiceTarget | None = None,
    ca_pem: bytes | None = None,
    namespace_selector: Mapping[str, Any] | None = None,
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration object, as the Helm chart renders it."""
    if not 1 <= timeout_seconds <= 30:
        raise WebhookConfigError("timeoutSeconds must be between 1 and 30")
    webhook: dict[str, Any] = {
        "name": WEBHOOK_NAME,
        "admissionReviewVersions": ["v1"],
        "clientConfig": client_config(url=url, service=service, ca_pem=ca_pem),
        "rules": [
            {
                "apiGroups": ["apps"],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["deployments", "statefulsets", "daemonsets"],
                "scope": "Namespaced",
            }
        ],
        "objectSelector": {"matchLabels": {ENABLED_LABEL: "true"}},
        "namespaceSelector": dict(namespace_selector or {}),
        "matchConditions": [dict(TEMPLATE_CHANGED_CONDITION)],
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "failurePolicy": "Ignore",
        "reinvocationPolicy": "Never",
        "timeoutSeconds": timeout_seconds,
    }
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "webhooks": [webhook]}


def namespace_selector_for(
    namespaces: Sequence[str] = (), labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A selector for the named namespaces (their `kubernetes.io/metadata.name` label) and/or labels."""
    selector: dict[str, Any] = {}
    if namespaces:
        selector["matchExpressions"] = [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted(set(namespaces))}
        ]
    if labels:
        selector["matchLabels"] = dict(labels)
    return selector


def ca_bundle_operations(configuration: Mapping[str, Any], ca_pem: bytes) -> list[dict[str, Any]]:
    """A JSON patch setting `caBundle` on every webhook, guarded by the resourceVersion read."""
    webhooks = configuration.get("webhooks") or []
    if not webhooks:
        name = (configuration.get("metadata") or {}).get("name")
        raise WebhookConfigError(f"MutatingWebhookConfiguration {name} has no webhooks")
    bundle = encode_ca_bundle(ca_pem)
    version = (configuration.get("metadata") or {}).get("resourceVersion")
    operations: list[dict[str, Any]] = []
    if version:
        operations.append({"op": "test", "path": "/metadata/resourceVersion", "value": version})
    operations.extend(
        {"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": bundle}
        for index in range(len(webhooks))
    )
    return operations


async def inject_ca_bundle(kube: KubeClient, name: str, ca_pem: bytes) -> dict[str, Any]:
    """Write the CA bundle into every webhook of an existing configuration (get + JSON patch)."""
    path = configuration_path(name)
    for _ in range(_PATCH_ATTEMPTS):
        current = await kube.get(path)
        try:
            return await kube.patch(path, ca_bundle_operations(current, ca_pem), JSON_PATCH)
        except InvalidError:
            continue  # changed between get and patch: read it again
    raise WebhookConfigError(f"MutatingWebhookConfiguration {name} kept changing; caBundle not written")


async def apply_webhook_configuration(kube: KubeClient, configuration: Mapping[str, Any]) -> dict[str, Any]:
    """Create the configuration, or replace the webhooks of an existing one of that name."""
    name = configuration["metadata"]["name"]
    try:
        return await kube.create(_PATH_PREFIX, dict(configuration))
    except ConflictError:
        pass
    for _ in range(_PATCH_ATTEMPTS):
        current = await kube.get(configuration_path(name))
        operations = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": current["metadata"]["resourceVersion"],
            },
            {"op": "replace", "path": "/webhooks", "value": configuration["webhooks"]},
        ]
        try:
            return await kube.patch(configuration_path(name), operations, JSON_PATCH)
        except InvalidError:
            continue
    raise WebhookConfigError(f"MutatingWebhookConfiguration {name} kept changing; not updated")
