"""GitHub's `package` and `registry_package` webhook events for container images on ghcr.io.

Signed with the webhook's secret: `X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>` (checked
by `autorollout.events.auth`, before this parser runs). The event name is in `X-GitHub-Event`;
only `published`/`updated`/`create` of a tagged container version move a tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autorollout.events.model import Headers, ImageEvent, MalformedEventError, host_of, image_event, obj, text

GHCR = "ghcr.io"
_EVENTS = {"package": "package", "registry_package": "registry_package"}
_ACTIONS = frozenset({"published", "updated", "create"})
_CONTAINER_TYPES = frozenset({"container", "docker"})


def parse(payload: object, headers: Headers) -> list[ImageEvent]:
    """The ghcr.io tag a package event says was published (none for other events or types)."""
    body = obj(payload, "payload")
    kind = headers.get("x-github-event")
    if kind == "ping":
        return []
    if kind is not None and kind not in _EVENTS:
        return []
    key = kind or next((k for k in _EVENTS if k in body), None)
    if key is None:
        raise MalformedEventError("neither a package nor a registry_package event")
    if body.get("action") not in _ACTIONS:
        return []
    package = obj(body.get(key), key)
    package_type = package.get("package_type") or package.get("ecosystem") or ""
    if not isinstance(package_type, str) or package_type.lower() not in _CONTAINER_TYPES:
        return []
    version = obj(package.get("package_version"), f"{key}.package_version")
    container = obj(version.get("container_metadata"), f"{key}.package_version.container_metadata")
    tag = obj(container.get("tag"), f"{key}.package_version.container_metadata.tag")
    if not tag.get("name"):
        return []  # an untagged version (a platform manifest, a pushed digest)
    name = text(package.get("name"), f"{key}.name")
    return [
        image_event(
            _registry(package),
            f"{_owner(package, key)}/{name}".lower(),
            text(tag["name"], "tag.name"),
            tag.get("digest"),
        )
    ]


def _owner(package: Mapping[str, Any], key: str) -> str:
    namespace = package.get("namespace")
    if isinstance(namespace, str) and namespace:
        return namespace
    owner = obj(package.get("owner"), f"{key}.owner")
    return text(owner.get("login"), f"{key}.owner.login")


def _registry(package: Mapping[str, Any]) -> str:
    registry = package.get("registry")
    url = registry.get("url") if isinstance(registry, Mapping) else None
    return host_of(url) if isinstance(url, str) and url else GHCR
