"""The generic form for CI scripts: `{"image": "host/repo:tag"}` (or `{"images": [...]}`), optionally
with `"digest"`. Docker Hub names are normalised as in pod specs."""

from __future__ import annotations

from autorollout.events.model import (
    Headers,
    ImageEvent,
    MalformedEventError,
    event_for_reference,
    items,
    obj,
    text,
)

MAX_IMAGES = 256


def parse(payload: object, headers: Headers) -> list[ImageEvent]:
    """The images a generic event names."""
    body = obj(payload, "payload")
    if "image" in body:
        return [event_for_reference(text(body["image"], "image"), body.get("digest"))]
    images = items(body.get("images"), "images")
    if len(images) > MAX_IMAGES:
        raise MalformedEventError(f"images: more than {MAX_IMAGES}")
    return [event_for_reference(text(image, f"images[{i}]")) for i, image in enumerate(images)]
