"""The sources the receiver knows: each one's parser and how it authenticates by default."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from autorollout.events import (
    acr,
    artifactory,
    cloudevents,
    distribution,
    dockerhub,
    generic,
    github,
    harbor,
    quay,
)
from autorollout.events.auth import GITHUB_SIGNATURE, Scheme
from autorollout.events.model import Headers, ImageEvent

Parser = Callable[[object, Headers], list[ImageEvent]]


@dataclass(frozen=True, slots=True)
class SourceKind:
    """A source's parser, its authentication scheme and the header its credential comes in."""

    parse: Parser
    scheme: Scheme = Scheme.TOKEN
    header: str = "authorization"
    # Docker Hub and Quay cannot set a header: their token is in the URL they are given.
    query_token: bool = False


SOURCES: Final[dict[str, SourceKind]] = {
    "distribution": SourceKind(distribution.parse),
    "dockerhub": SourceKind(dockerhub.parse, query_token=True),
    "github": SourceKind(github.parse, scheme=Scheme.HMAC_SHA256, header=GITHUB_SIGNATURE),
    "harbor": SourceKind(harbor.parse),
    "quay": SourceKind(quay.parse, query_token=True),
    "artifactory": SourceKind(artifactory.parse, header="x-jfrog-event-auth"),
    "acr": SourceKind(acr.parse),
    "cloudevents": SourceKind(cloudevents.parse),
    "generic": SourceKind(generic.parse),
}


def parser_for(name: str, *, registry_host: str | None = None) -> Parser:
    """The parser of source `name`, with the registry host Artifactory images are addressed by."""
    if name == "artifactory" and registry_host:
        return functools.partial(artifactory.parse, registry_host=registry_host)
    return SOURCES[name].parse
