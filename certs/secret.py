"""Store the webhook's serving certificate as a `kubernetes.io/tls` Secret (with `ca.crt`)."""

from __future__ import annotations

import base64
from typing import Any

from autorollout.kube import MERGE_PATCH, ConflictError, KubeClient, core_collection, core_path


def tls_secret(
    namespace: str, name: str, *, ca_pem: bytes, cert_pem: bytes, key_pem: bytes
) -> dict[str, Any]:
    """The Secret object; the chart mounts it as the webhook's `tls.crt`/`tls.key`."""

    def encoded(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": {"ca.crt": encoded(ca_pem), "tls.crt": encoded(cert_pem), "tls.key": encoded(key_pem)},
    }


async def write_tls_secret(kube: KubeClient, secret: dict[str, Any]) -> None:
    """Create the Secret, or update the data of the existing one of that name."""
    namespace, name = secret["metadata"]["namespace"], secret["metadata"]["name"]
    try:
        await kube.create(core_collection("secrets", namespace), secret)
    except ConflictError:
        await kube.patch(core_path("secrets", namespace, name), {"data": secret["data"]}, MERGE_PATCH)
