"""Harbor webhooks (HTTP policy, "Default" payload format): `type: PUSH_ARTIFACT` (older releases:
`pushImage`) with `event_data.resources[]`, each a pushed artifact with its `tag` and a
`resource_url` "harbor.example.com/project/repo:tag". Harbor sends the policy's "Auth Header" value
as `Authorization`. Harbor's CloudEvents format is read by `autorollout.events.cloudevents`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autorollout.events.model import Headers, ImageEvent, host_of, image_event, items, obj, text

PUSH_TYPES = frozenset({"PUSH_ARTIFACT", "pushImage"})


def parse(payload: object, headers: Headers) -> list[ImageEvent]:
    """The tags a Harbor push event names (none for pulls, deletes, scans, quota events)."""
    body = obj(payload, "payload")
    if text(body.get("type"), "type") not in PUSH_TYPES:
        return []
    return push_resources(obj(body.get("event_data"), "event_data"), "event_data")


def push_resources(data: Mapping[str, Any], where: str) -> list[ImageEvent]:
    """The tagged resources of a Harbor push's `event_data` (also a CloudEvent's `data`)."""
    repository = obj(data.get("repository"), f"{where}.repository")
    name = text(repository.get("repo_full_name"), f"{where}.repository.repo_full_name")
    found = []
    for i, raw in enumerate(items(data.get("resources"), f"{where}.resources")):
        resource = obj(raw, f"{where}.resources[{i}]")
        tag = resource.get("tag")
        if not tag:
            continue
        host = host_of(text(resource.get("resource_url"), f"{where}.resources[{i}].resource_url"))
        found.append(
            image_event(host, name, text(tag, f"{where}.resources[{i}].tag"), resource.get("digest"))
        )
    return found
