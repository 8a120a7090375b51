"""Quay's "Push to Repository" notification (webhook method): `docker_url` "quay.io/ns/repo" and
`updated_tags` ["latest", ...]. Quay signs nothing and sets no custom header: the shared token
travels in the URL's `token` query parameter (see docs/registry-events.md)."""

from __future__ import annotations

from autorollout.events.model import Headers, ImageEvent, MalformedEventError, image_event, items, obj, text

MAX_TAGS = 256


def parse(payload: object, headers: Headers) -> list[ImageEvent]:
    """The tags a Quay repository push names."""
    body = obj(payload, "payload")
    docker_url = text(body.get("docker_url"), "docker_url")
    tags = items(body.get("updated_tags"), "updated_tags")
    if len(tags) > MAX_TAGS:
        raise MalformedEventError(f"updated_tags: more than {MAX_TAGS}")
    return [image_event("", docker_url, text(tag, f"updated_tags[{i}]")) for i, tag in enumerate(tags)]
