"""CNCF distribution's `notifications` envelope (Debian's docker-registry, GitLab, Zot, and most
self-hosted registries): `{"events": [{"action": "push", "target": {...}, "request": {...}}]}`.

A push of a tag is an event whose target names the tag; a manifest pushed by digest (the
platform manifests of an index) names none and moves no tag. Pulls, mounts and deletes move none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autorollout.events.model import (
    Headers,
    ImageEvent,
    MalformedEventError,
    host_of,
    image_event,
    items,
    obj,
    text,
)

MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
MAX_EVENTS = 1000  # an envelope holds `threshold` events (5 by default)


def parse(payload: object, headers: Headers) -> list[ImageEvent]:
    """The tags an envelope says were pushed (none for pulls, deletes, pushes by digest)."""
    events = items(obj(payload, "payload").get("events"), "events")
    if len(events) > MAX_EVENTS:
        raise MalformedEventError(f"events: more than {MAX_EVENTS}")
    found: list[ImageEvent] = []
    for i, raw in enumerate(events):
        event = push_event(obj(raw, f"events[{i}]"), f"events[{i}]")
        if event is not None:
            found.append(event)
    return found


def push_event(event: Mapping[str, Any], where: str) -> ImageEvent | None:
    """One distribution-style event (also Azure Container Registry's): the tag it pushed, if any."""
    if event.get("action") != "push":
        return None
    target = obj(event.get("target"), f"{where}.target")
    tag = target.get("tag")
    if not tag:
        return None
    repository = text(target.get("repository"), f"{where}.target.repository")
    request = event.get("request")
    host = request.get("host") if isinstance(request, Mapping) else None
    if not host:
        host = host_of(target.get("url"))
    return image_event(
        text(host, f"{where}.request.host"),
        repository,
        text(tag, f"{where}.target.tag"),
        target.get("digest"),
    )
