"""What a parser makes of a payload, and the typed accessors every parser reads JSON with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from autorollout.errors import AutorolloutError
from autorollout.references import (
    ImageReference,
    InvalidReferenceError,
    is_valid_digest,
    parse_image_reference,
)

Headers = Mapping[str, str]
"""Request headers, names lowercased."""


class MalformedEventError(AutorolloutError, ValueError):
    """A payload that is not what its source sends; the message is one line, without the payload."""


@dataclass(frozen=True, slots=True)
class ImageEvent:
    """A registry says: `image` (registry, repository, tag; normalised) now points to `digest` (if said)."""

    image: ImageReference
    digest: str | None = None

    @property
    def key(self) -> str:
        """What coalescing and `status` group by: "registry/repository:tag"."""
        return self.image.repository_key


def image_event(host: str, repository: str, tag: str, digest: object = None) -> ImageEvent:
    """The event for `host/repository:tag` (Docker Hub names normalised as in a pod spec)."""
    text = f"{host}/{repository}:{tag}" if host else f"{repository}:{tag}"
    return event_for_reference(text, digest)


def event_for_reference(text: str, digest: object = None) -> ImageEvent:
    """The event for an image reference as a pod spec writes it (no tag: "latest")."""
    try:
        ref = parse_image_reference(text)
    except InvalidReferenceError as exc:
        raise MalformedEventError(f"not an image reference: {exc.reason}") from None
    if ref.tag is None and ref.digest is not None:
        raise MalformedEventError("the image names no tag (a digest cannot move)")
    said = digest if isinstance(digest, str) and is_valid_digest(digest) else None
    return ImageEvent(ImageReference(ref.registry, ref.repository, ref.tag_or_latest), said)


def host_of(url: object) -> str:
    """The host[:port] of a URL ("https://ghcr.io/v2/..." -> "ghcr.io"), or of a bare "host/path"."""
    if not isinstance(url, str) or not url:
        raise MalformedEventError("a registry URL is missing")
    parts = urlsplit(url if "://" in url else f"//{url}")
    if not parts.netloc or "@" in parts.netloc:
        raise MalformedEventError("a registry URL has no host")
    return parts.netloc.lower()


def obj(value: object, where: str) -> Mapping[str, Any]:
    """`value` as a JSON object, else a MalformedEventError naming `where`."""
    if not isinstance(value, Mapping):
        raise MalformedEventError(f"{where}: expected an object")
    return value


def text(value: object, where: str) -> str:
    """`value` as a non-empty string, else a MalformedEventError naming `where`."""
    if not isinstance(value, str) or not value:
        raise MalformedEventError(f"{where}: expected a non-empty string")
    return value


def items(value: object, where: str) -> list[Any]:
    """`value` as a JSON array, else a MalformedEventError naming `where`."""
    if not isinstance(value, list):
        raise MalformedEventError(f"{where}: expected an array")
    return value
