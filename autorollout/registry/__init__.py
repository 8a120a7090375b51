"""Registry access: resolve image tags to manifest digests (client), many at once (resolver)."""

from autorollout.registry.client import ManifestDigest, PlatformManifest, RegistryClient, RetryPolicy
from autorollout.registry.errors import (
    BadResponseError,
    CredentialBackoffError,
    ForbiddenError,
    LookupTimeoutError,
    NotFoundError,
    RateLimitedError,
    RegistryConfigError,
    RegistryError,
    RegistryTlsError,
    UnauthorizedError,
    UnreachableError,
)
from autorollout.registry.resolver import DigestResolver, Lookup

__all__ = [
    "BadResponseError",
    "CredentialBackoffError",
    "DigestResolver",
    "ForbiddenError",
    "Lookup",
    "LookupTimeoutError",
    "ManifestDigest",
    "NotFoundError",
    "PlatformManifest",
    "RateLimitedError",
    "RegistryClient",
    "RegistryConfigError",
    "RegistryError",
    "RegistryTlsError",
    "RetryPolicy",
    "UnauthorizedError",
    "UnreachableError",
]
