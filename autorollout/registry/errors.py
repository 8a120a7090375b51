"""The one error hierarchy of registry access: what failed, at which registry, for which image."""

from __future__ import annotations

from autorollout.errors import AutorolloutError


class RegistryError(AutorolloutError):
    """A digest lookup failed; `registry` is the host[:port], `reference` the image as text."""

    #: What kind of failure, as a metric label (kube_autorollout_registry_lookup_failures_total).
    reason = "error"
    retryable = False

    def __init__(self, message: str, *, registry: str = "", reference: str = "") -> None:
        self.registry = registry
        self.reference = reference
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        where = self.reference or self.registry
        return f"{where}: {self.message}" if where else self.message


class NotFoundError(RegistryError):
    """The repository or tag does not exist (HTTP 404)."""

    reason = "not_found"


class UnauthorizedError(RegistryError):
    """The registry asked for credentials, or rejected the ones sent (HTTP 401)."""

    reason = "unauthorized"


class ForbiddenError(RegistryError):
    """The credentials were accepted but do not allow pulling this repository (HTTP 403)."""

    reason = "forbidden"


class RateLimitedError(RegistryError):
    """The registry answered 429; `retry_after` is the wait it asked for in seconds, if it said."""

    reason = "rate_limited"

    retryable = True

    def __init__(
        self, message: str, *, registry: str = "", reference: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message, registry=registry, reference=reference)
        self.retry_after = retry_after


class UnreachableError(RegistryError):
    """No HTTP answer: connection refused, DNS failure or timeout."""

    reason = "unreachable"

    retryable = True


class RegistryTlsError(RegistryError):
    """The TLS handshake failed, usually an untrusted certificate (see tls.caCertificatePaths)."""

    reason = "tls"


class BadResponseError(RegistryError):
    """The registry answered something unusable: a 5xx, a wrong digest, an oversized or odd body."""

    reason = "bad_response"


class ServerError(BadResponseError):
    """The registry answered with a 5xx status; retried a few times before it is reported."""

    reason = "server_error"

    retryable = True


class CredentialBackoffError(RegistryError):
    """These credentials were rejected by this registry recently; not sent again for `retry_in` seconds."""

    reason = "locked_out"

    def __init__(
        self, message: str, *, registry: str = "", reference: str = "", retry_in: float = 0.0
    ) -> None:
        super().__init__(message, registry=registry, reference=reference)
        self.retry_in = retry_in


class InvalidCredentialsError(RegistryError):
    """Credentials (or a token a token service issued) cannot be sent in an HTTP header: a control
    character, a space or a non-ASCII character in them. Nothing is sent; the message names where
    they came from, never what they are."""

    reason = "invalid_credentials"


class LookupTimeoutError(RegistryError):
    """The lookup did not finish within its deadline (lookupTimeoutSeconds) or the caller's time
    budget (then it may still fill the cache); a later attempt may succeed."""

    reason = "timeout"

    retryable = True


class RegistryConfigError(RegistryError):
    """The client cannot be set up, e.g. a CA file from tls.caCertificatePaths is missing."""

    reason = "config"
