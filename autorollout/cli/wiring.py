"""Building the shared registry pieces from the configuration, once, for every command."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from autorollout import metrics
from autorollout.config import Config
from autorollout.credentials import CredentialStore
from autorollout.registry.client import RegistryClient
from autorollout.registry.resolver import DigestResolver

log = logging.getLogger("kube_autorollout")


def registry_client(config: Config) -> RegistryClient:
    """The registry client the configuration describes, reporting its requests as metrics."""
    return RegistryClient(
        ca_paths=config.tls.ca_certificate_paths,
        artifactory_fallback=config.feature_flags.enable_jfrog_artifactory_fallback,
        on_request=metrics.observe_registry_request,
        deadline=config.lookup_timeout_seconds,
    )


@contextlib.asynccontextmanager
async def open_resolver(config: Config) -> AsyncIterator[DigestResolver]:
    """One digest resolver (client, cache, in-flight sharing) for the life of the process."""
    client = registry_client(config)
    resolver = DigestResolver(
        client,
        cache_ttl=config.digest_cache_ttl_seconds,
        per_registry_limit=config.reconciler.registry_concurrency,
        on_cache=metrics.observe_cache,
        on_lookup=metrics.observe_lookup,
    )
    try:
        yield resolver
    finally:
        await resolver.aclose()
        await client.aclose()


def credential_store(config: Config) -> CredentialStore:
    """Registry credentials from the config; unreadable secret files are logged, not fatal."""
    store = CredentialStore.from_config(config, strict=False)
    for problem in store.problems:
        log.warning("registry credentials not available", extra={"fields": {"problem": problem}})
    return store
