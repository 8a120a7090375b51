"""Container image references: parse what a pod spec's `image` field says into registry, repository,
tag and digest, with Docker Hub's normalization rules as Docker's reference library applies them.

Grammar (CNCF distribution `reference`)::

    reference := name [ ":" tag ] [ "@" digest ]
    name      := [ domain "/" ] path-component *( "/" path-component )
    domain    := ( domain-name | "[" ipv6 "]" ) [ ":" port ]

Normalization: the first component is a registry only if it contains "." or ":", is "localhost", or
has an uppercase letter; otherwise the registry is Docker Hub ("docker.io"), where a single-component
repository gets the "library/" prefix. "index.docker.io" is an alias of "docker.io".
"registry-1.docker.io" is kept as written (Docker treats it as a separate hostname, so neither the
registry nor the "library/" prefix changes); only `api_host` maps Docker Hub to it. Registry host
names are stored in lowercase, except a dot-less host that only its uppercase marks as one ("Foo/x"),
which is kept as written so that its canonical form still parses to the same reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from autorollout.errors import AutorolloutError

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_API_HOST",
    "DOCKER_HUB_HOSTS",
    "ImageReference",
    "InvalidReferenceError",
    "is_valid_digest",
    "parse_image_reference",
]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
_LEGACY_DOCKER_HUB = "index.docker.io"
#: Every host name that means Docker Hub (used for credential and pattern matching).
DOCKER_HUB_HOSTS = frozenset({DOCKER_HUB, _LEGACY_DOCKER_HUB, DOCKER_HUB_API_HOST})
_OFFICIAL_PREFIX = "library/"
_NAME_TOTAL_LENGTH_MAX = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?",
    re.ASCII,
)
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*", re.ASCII)
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(r"([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*):([0-9a-fA-F]{32,})", re.ASCII)
_HEX_ID_RE = re.compile(r"[a-f0-9]{64}", re.ASCII)
_LOWER_HEX_RE = re.compile(r"[0-9a-f]+", re.ASCII)
# Algorithms the container runtimes verify, with the hex length each one produces.
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_QUOTE_MAX = 200
_PORT_MAX = 65535


class InvalidReferenceError(AutorolloutError, ValueError):
    """An image reference that Kubernetes' container runtimes would not accept."""

    def __init__(self, reference: object, reason: str) -> None:
        self.reference = reference
        self.reason = reason
        super().__init__(f"invalid image reference {_quote(reference)}: {reason}")


def _quote(value: object) -> str:
    if not isinstance(value, str):
        return f"<{type(value).__name__}>"
    if len(value) > _QUOTE_MAX:
        value = value[:_QUOTE_MAX] + "..."
    return repr(value)


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed, normalized image reference; `tag` and `digest` are None when not written."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Fully qualified repository name: "docker.io/library/nginx"."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host[:port] to send registry API requests to ("registry-1.docker.io" for Docker Hub)."""
        return DOCKER_HUB_API_HOST if self.registry in (DOCKER_HUB, _LEGACY_DOCKER_HUB) else self.registry

    @property
    def is_pinned(self) -> bool:
        """True when the reference names a digest: its image cannot move, so it is never checked."""
        return self.digest is not None

    @property
    def tag_or_latest(self) -> str:
        """The tag to resolve: the written tag, or "latest" as the runtimes assume."""
        return self.tag or "latest"

    @property
    def repository_key(self) -> str:
        """The dedupe key of lookups: "registry/repository:tag", without the digest."""
        return f"{self.registry}/{self.repository}:{self.tag_or_latest}"

    def __str__(self) -> str:
        """Canonical fully qualified form; ":latest" is written when neither tag nor digest is."""
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        elif self.digest is None:
            text += ":latest"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_image_reference(text: str) -> ImageReference:
    """Parse an image reference as a pod spec writes it; raises InvalidReferenceError, nothing else."""
    if not isinstance(text, str):
        raise InvalidReferenceError(text, "must be a string")
    if not text:
        raise InvalidReferenceError(text, "is empty")
    if any(ch.isspace() for ch in text):
        raise InvalidReferenceError(text, "contains whitespace")
    if _HEX_ID_RE.fullmatch(text):
        raise InvalidReferenceError(text, "a 64-character hexadecimal string is an image ID, not a name")

    name_and_tag, at, digest_text = text.partition("@")
    digest = _parse_digest(text, digest_text) if at else None

    # A ":" after the last "/" separates the tag; one before it belongs to a registry port.
    colon = name_and_tag.rfind(":")
    tag: str | None = None
    name = name_and_tag
    if colon > name_and_tag.rfind("/"):
        name, tag = name_and_tag[:colon], name_and_tag[colon + 1 :]
        if not tag:
            raise InvalidReferenceError(text, "empty tag after ':'")
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReferenceError(
                text,
                f"invalid tag {tag!r}: up to 128 of letters, digits, '_', '.', '-'; no '.' or '-' first",
            )
    if not name:
        raise InvalidReferenceError(text, "missing repository name")

    registry, repository = _split_registry(name)
    if not _DOMAIN_RE.fullmatch(registry):
        raise InvalidReferenceError(text, f"invalid registry host {registry!r}")
    _check_port(text, registry)
    if _is_host_by_shape(registry.lower()):
        # Otherwise its uppercase is what marks it as a host: kept, so the canonical form reparses.
        registry = registry.lower()
    if registry == _LEGACY_DOCKER_HUB:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = _OFFICIAL_PREFIX + repository
    _check_repository(text, repository)
    if len(registry) + 1 + len(repository) > _NAME_TOTAL_LENGTH_MAX:
        raise InvalidReferenceError(
            text, f"repository name longer than {_NAME_TOTAL_LENGTH_MAX} characters (registry included)"
        )
    return ImageReference(registry=registry, repository=repository, tag=tag, digest=digest)


def _split_registry(name: str) -> tuple[str, str]:
    slash = name.find("/")
    if slash == -1:
        return DOCKER_HUB, name
    first = name[:slash]
    if _is_host_by_shape(first) or first.lower() != first:
        return first, name[slash + 1 :]
    return DOCKER_HUB, name


def _is_host_by_shape(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def _check_port(text: str, registry: str) -> None:
    # The grammar takes any run of digits; a socket takes 1-65535 (0 means "any port").
    host_end = registry.rfind("]")
    _, colon, port = registry[host_end + 1 :].rpartition(":")
    if colon and (len(port) > len(str(_PORT_MAX)) or not 1 <= int(port) <= _PORT_MAX):
        shown = port if len(port) <= 10 else port[:10] + "..."
        raise InvalidReferenceError(text, f"registry port {shown} is not in 1-{_PORT_MAX}")


def _check_repository(text: str, repository: str) -> None:
    if repository.lower() != repository:
        raise InvalidReferenceError(text, "repository name must be lowercase")
    for component in repository.split("/"):
        if not component:
            raise InvalidReferenceError(text, "empty path component in repository name (check the '/'s)")
        if not _PATH_COMPONENT_RE.fullmatch(component):
            raise InvalidReferenceError(
                text,
                f"invalid repository path component {component!r}: lowercase letters and digits, "
                "separated by '.', '_', '__' or dashes",
            )


def is_valid_digest(text: str) -> bool:
    """True for a digest the container runtimes verify: sha256/sha384/sha512, lowercase hex of the
    algorithm's length (the only form a digest from a registry is accepted in)."""
    algorithm, colon, hex_part = text.partition(":")
    return (
        bool(colon)
        and len(hex_part) == _DIGEST_HEX_LENGTHS.get(algorithm, -1)
        and _LOWER_HEX_RE.fullmatch(hex_part) is not None
    )


def _parse_digest(text: str, digest: str) -> str:
    match = _DIGEST_RE.fullmatch(digest)
    if match is None:
        raise InvalidReferenceError(text, "invalid digest after '@': expected sha256:<64 hex digits>")
    algorithm, hex_part = match.groups()
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    if expected is None:
        raise InvalidReferenceError(text, f"unsupported digest algorithm {algorithm!r}")
    if len(hex_part) != expected:
        raise InvalidReferenceError(
            text, f"{algorithm} digest needs {expected} hex digits, not {len(hex_part)}"
        )
    if hex_part.lower() != hex_part:
        raise InvalidReferenceError(text, "digest hex must be lowercase")
    return digest
