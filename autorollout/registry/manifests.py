"""Manifest types and checks, pure (no network): the media types containerd asks for, the digest a tag
points to, the platform entries of an index, and verification of a manifest body against its digest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from autorollout.references import is_valid_digest
from autorollout.registry.errors import BadResponseError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# containerd's order: list types first, or a registry may answer with one platform's manifest.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})


@dataclass(frozen=True, slots=True)
class PlatformManifest:
    """One entry of an image index / manifest list."""

    digest: str
    media_type: str
    os: str
    architecture: str
    variant: str | None = None

    @property
    def platform(self) -> str:
        """ "linux/arm64" or "linux/arm/v7"."""
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)


@dataclass(frozen=True, slots=True)
class ManifestDigest:
    """The digest a tag points to; for an index (when asked for) the platform manifests in it."""

    digest: str
    media_type: str
    platform_digests: tuple[str, ...] = ()
    platforms: tuple[PlatformManifest, ...] = ()

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES


def parse_index(body: bytes) -> tuple[PlatformManifest, ...]:
    """The `manifests` of an OCI index / Docker manifest list; raises BadResponseError when malformed."""
    data = json_object(body)
    entries = data.get("manifests")
    if not isinstance(entries, list):
        raise BadResponseError("index has no 'manifests' list")
    platforms = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
            raise BadResponseError("index entry without a digest")
        if not is_valid_digest(entry["digest"]):
            # Shown by `digest --platforms` and used as a manifest reference: never taken as written.
            raise BadResponseError("index entry with an invalid digest (expected sha256:<64 hex digits>)")
        raw_platform = entry.get("platform")
        platform: dict[str, Any] = raw_platform if isinstance(raw_platform, dict) else {}
        variant = platform.get("variant")
        platforms.append(
            PlatformManifest(
                digest=entry["digest"],
                media_type=str(entry.get("mediaType", "")),
                os=str(platform.get("os", "unknown")),
                architecture=str(platform.get("architecture", "unknown")),
                variant=str(variant) if variant else None,
            )
        )
    return tuple(platforms)


def verify_manifest(body: bytes, header: str | None, pinned: str | None = None) -> str:
    """The digest of a manifest body, checked against the `Docker-Content-Digest` header (its
    algorithm is used when given) and against the digest asked for; BadResponseError on mismatch."""
    expected = valid_digest(header) if header is not None else None
    if header is not None and expected is None:
        raise BadResponseError(f"registry sent an invalid Docker-Content-Digest {header[:100]!r}")
    algorithm = expected.split(":", 1)[0] if expected else "sha256"
    computed = f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"
    if expected is not None and computed != expected:
        raise BadResponseError(
            f"manifest body does not match its Docker-Content-Digest ({expected} != {computed})"
        )
    if pinned is not None and pinned.split(":", 1)[0] == algorithm and computed != pinned:
        raise BadResponseError(f"manifest body does not match the requested digest {pinned}")
    return computed


def json_object(body: bytes) -> dict[str, Any]:
    """A manifest body as a JSON object; BadResponseError when it is not one."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadResponseError("manifest is not valid JSON") from exc
    if not isinstance(data, dict):
        raise BadResponseError("manifest is not a JSON object")
    return data


def valid_digest(text: str | None) -> str | None:
    """`text` stripped when it is a valid digest, else None."""
    if text is None:
        return None
    digest = text.strip()
    return digest if is_valid_digest(digest) else None


__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_ACCEPT",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "ManifestDigest",
    "PlatformManifest",
    "json_object",
    "parse_index",
    "valid_digest",
    "verify_manifest",
]
