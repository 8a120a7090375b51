"""The registry credentials of a workload's imagePullSecrets, read through the API and cached."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence

import orjson

from autorollout.credentials import CredentialsError, RegistryCredentials, parse_dockerconfigjson
from autorollout.kube.client import JsonObject, KubeClient
from autorollout.kube.errors import KubeError
from autorollout.kube.paths import core_path

log = logging.getLogger("kube_autorollout.kube")

PullSecretCredentials = dict[str, RegistryCredentials]


def credentials_from_secret(secret: JsonObject) -> PullSecretCredentials:
    """Registry credentials of a `kubernetes.io/dockerconfigjson` or legacy `dockercfg` Secret."""
    data = secret.get("data") or {}
    metadata = secret.get("metadata") or {}
    source = f"imagePullSecret {metadata.get('namespace', '?')}/{metadata.get('name', '?')}"
    if ".dockerconfigjson" in data:
        return parse_dockerconfigjson(base64.b64decode(data[".dockerconfigjson"]), source=source)
    if ".dockercfg" in data:
        legacy = orjson.loads(base64.b64decode(data[".dockercfg"]))
        return parse_dockerconfigjson(orjson.dumps({"auths": legacy}), source=source)
    return {}


class PullSecretReader:
    """Reads imagePullSecrets by name, caching each Secret (and each miss) for `ttl` seconds."""

    def __init__(self, kube: KubeClient | None, *, ttl: float = 60.0) -> None:
        self._kube = kube
        self._ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, PullSecretCredentials]] = {}

    async def read(self, namespace: str, names: Sequence[str]) -> list[PullSecretCredentials]:
        """One credentials mapping per readable secret, in the given order; unreadable ones are logged."""
        found: list[PullSecretCredentials] = []
        for name in names:
            creds = await self._read_one(namespace, name)
            if creds:
                found.append(creds)
        return found

    async def _read_one(self, namespace: str, name: str) -> PullSecretCredentials:
        key = (namespace, name)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        creds: PullSecretCredentials = {}
        if self._kube is None:
            log.warning("imagePullSecret %s/%s not read: no Kubernetes API connection", namespace, name)
        else:
            try:
                creds = credentials_from_secret(await self._kube.get(core_path("secrets", namespace, name)))
            except KubeError as exc:
                log.warning("imagePullSecret %s/%s not read: %s", namespace, name, exc)
            except (CredentialsError, ValueError) as exc:
                log.warning("imagePullSecret %s/%s is not a valid docker config: %s", namespace, name, exc)
        self._cache[key] = (now, creds)
        return creds
