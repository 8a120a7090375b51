"""The `events:` section: the registry-event receiver (off by default), its listener and each
source's authentication and rate limit."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from autorollout.config.models import NonBlankStr, Port, _Section

SourceName = Literal[
    "distribution", "dockerhub", "github", "harbor", "quay", "artifactory", "acr", "cloudevents", "generic"
]
SOURCE_NAMES: tuple[SourceName, ...] = (
    "distribution",
    "dockerhub",
    "github",
    "harbor",
    "quay",
    "artifactory",
    "acr",
    "cloudevents",
    "generic",
)


class EventSourceConfig(_Section):
    """One source: its shared secret (a token, or GitHub's HMAC key), where it sends it, its rate.

    `secret` or `secretFile` (a mounted Secret; a trailing newline is stripped), or
    `allowUnauthenticated: true`, which start-up warns about.
    """

    secret: SecretStr | None = None
    secret_file: NonBlankStr | None = None
    header: NonBlankStr | None = None
    allow_unauthenticated: bool = False
    requests_per_second: float = Field(default=10.0, gt=0)
    burst: int = Field(default=20, ge=1)
    registry_host: NonBlankStr | None = None

    @model_validator(mode="after")
    def _one_way_in(self) -> EventSourceConfig:
        given = (self.secret is not None) + (self.secret_file is not None)
        if given > 1:
            raise ValueError("set either secret or secretFile, not both")
        if given and self.allow_unauthenticated:
            raise ValueError("set either a secret or allowUnauthenticated: true, not both")
        if not given and not self.allow_unauthenticated:
            raise ValueError("needs secret or secretFile (or allowUnauthenticated: true)")
        if self.secret is not None and not self.secret.get_secret_value().strip():
            raise ValueError("secret must not be empty")
        return self


class EventSources(_Section):
    """The sources accepted, each at `POST /events/<source>`; a source left out answers 404."""

    distribution: EventSourceConfig | None = None
    dockerhub: EventSourceConfig | None = None
    github: EventSourceConfig | None = None
    harbor: EventSourceConfig | None = None
    quay: EventSourceConfig | None = None
    artifactory: EventSourceConfig | None = None
    acr: EventSourceConfig | None = None
    cloudevents: EventSourceConfig | None = None
    generic: EventSourceConfig | None = None

    def configured(self) -> dict[SourceName, EventSourceConfig]:
        """The sources written in the file, by name."""
        found = {name: getattr(self, name) for name in SOURCE_NAMES}
        return {name: source for name, source in found.items() if source is not None}


class EventsConfig(_Section):
    """The registry-event receiver: its own HTTP(S) listener, off unless `enabled: true`."""

    enabled: bool = False
    host: NonBlankStr = "0.0.0.0"  # noqa: S104 - registries reach it through a Service or an Ingress
    port: Port = 8090
    tls_cert_file: NonBlankStr | None = None
    tls_key_file: NonBlankStr | None = None
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    coalesce_seconds: float = Field(default=0.1, ge=0, le=60)
    sources: EventSources = Field(default_factory=EventSources)

    @model_validator(mode="after")
    def _consistent(self) -> EventsConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tlsCertFile and tlsKeyFile must be given together")
        if self.enabled and not self.sources.configured():
            raise ValueError("enabled, but no source is configured under sources")
        return self
