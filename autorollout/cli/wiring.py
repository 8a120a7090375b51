"""Building the shared registry pieces from the configuration, once, for every command."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final

from autorollout import metrics
from autorollout.config import Config
from autorollout.credentials import CredentialStore
from autorollout.registry.client import RegistryClient
from autorollout.registry.resolver import DigestResolver

log = logging.getLogger("kube_autorollout.registry")

# Admission lookups in flight, in all and per registry host (queued or running); beyond them a
# lookup is refused at once. Each costs a few KiB, so this bounds what a flood of reviews can hold.
ADMISSION_MAX_IN_FLIGHT: Final = 2048
ADMISSION_MAX_IN_FLIGHT_PER_HOST: Final = 512


def registry_client(config: Config) -> RegistryClient:
    """The registry client the configuration describes, reporting its requests as metrics."""
    # A pool per host, large enough for both halves' lookups at that host at once (each may hold
    # the registry's 401 answer while it fetches a token from the same host), so it never waits.
    per_host = 2 * (2 * config.reconciler.registry_concurrency) + 2
    return RegistryClient(
        ca_paths=config.tls.ca_certificate_paths,
        artifactory_fallback=config.feature_flags.enable_jfrog_artifactory_fallback,
        on_request=metrics.observe_registry_request,
        deadline=config.lookup_timeout_seconds,
        connections_per_host=per_host,
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


@contextlib.asynccontextmanager
async def open_admission_resolver(config: Config, shared: DigestResolver) -> AsyncIterator[DigestResolver]:
    """The webhook's resolver: `shared`'s client and cache, its own per-registry limits (so neither
    half can hold the other's), and lookups cancelled once no review waits for them."""
    resolver = DigestResolver(
        shared.client,
        cache_ttl=config.digest_cache_ttl_seconds,
        cache=shared.cache,
        per_registry_limit=config.reconciler.registry_concurrency,
        on_cache=metrics.observe_cache,
        on_lookup=metrics.observe_lookup,
        cancel_abandoned=True,
        max_in_flight=ADMISSION_MAX_IN_FLIGHT,
        max_in_flight_per_host=ADMISSION_MAX_IN_FLIGHT_PER_HOST,
    )
    try:
        yield resolver
    finally:
        await resolver.aclose()


def credential_store(config: Config) -> CredentialStore:
    """Registry credentials from the config; unreadable secret files are logged, not fatal."""
    store = CredentialStore.from_config(config, strict=False)
    for problem in store.problems:
        log.warning("registry credentials not available", extra={"fields": {"problem": problem}})
    return store
