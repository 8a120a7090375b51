"""Resolve many image references at once: one request per unique image, shared by every caller.

Lookups are keyed by (repository_key, credential fingerprint, platforms). A key is answered from the
TTL cache (successes only), else by the one in-flight task for it, which concurrent callers share;
tasks run under a per-registry concurrency limit.

Freshness: `resolve_many(fresh_after=t)` (t on `now()`'s clock) accepts only cache entries whose lookup
started at or after t, so a reconcile cycle passing its own start time sees every push made before it
began, while still asking once per unique image within the cycle. A lookup still in flight is shared
whatever its age: a registry slower than the cycle is not asked again by every cycle, and a later
cycle gets its answer (which the cache then keeps as of when it was asked).

Time budget: `resolve_many(timeout=...)` reports a LookupTimeoutError for what did not finish in
time. By default the shared task is not cancelled: it keeps running (bounded by the client's own
deadline and retries) and fills the cache, so the next caller (the next cycle) finds the digest.
With `cancel_abandoned=True` (the webhook's resolver) a task is cancelled as soon as no caller
waits for it any more, so lookups abandoned at a budget cannot pile up; `max_in_flight` and
`max_in_flight_per_host` refuse new lookups at once (LookupRefusedError) beyond those counts.
`aclose()` cancels whatever is still running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autorollout.registry.cache import TtlCache
from autorollout.registry.client import RegistryClient
from autorollout.registry.errors import BadResponseError, LookupTimeoutError, RegistryError
from autorollout.registry.manifests import ManifestDigest

if TYPE_CHECKING:
    from autorollout.credentials import RegistryCredentials
    from autorollout.references import ImageReference

log = logging.getLogger("kube_autorollout.registry")

CacheKey = tuple[str, str, bool]
LookupResult = ManifestDigest | RegistryError


class LookupRefusedError(RegistryError):
    """Too many lookups in flight (in all or at this registry): refused without a request."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """One image to resolve, with the credentials chosen for it (None: anonymous)."""

    reference: ImageReference
    credentials: RegistryCredentials | None = None

    def key(self, platforms: bool) -> CacheKey:
        ref = self.reference
        # A pinned reference only needs a request when its index entries are wanted.
        name = str(ref) if ref.digest is not None else ref.repository_key
        fingerprint = "anonymous" if self.credentials is None else self.credentials.fingerprint()
        return (name, fingerprint, platforms)


class DigestResolver:
    """Deduplicating, cached, concurrency-limited digest lookups over a RegistryClient."""

    def __init__(
        self,
        client: RegistryClient,
        *,
        cache_ttl: float,
        per_registry_limit: int,
        cache: TtlCache[CacheKey, ManifestDigest] | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_cache: Callable[[str], None] | None = None,
        on_lookup: Callable[[str, float], None] | None = None,
        cancel_abandoned: bool = False,
        max_in_flight: int | None = None,
        max_in_flight_per_host: int | None = None,
    ) -> None:
        self.client = client
        # `is None`, not `or`: an empty cache is falsy, and a shared one must still be shared.
        self.cache: TtlCache[CacheKey, ManifestDigest] = (
            cache if cache is not None else TtlCache(cache_ttl, clock=clock)
        )
        self._limit = max(1, per_registry_limit)
        self._clock = clock
        self._on_cache = on_cache
        self._on_lookup = on_lookup
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._inflight: dict[CacheKey, asyncio.Task[LookupResult]] = {}
        self._cancel_abandoned = cancel_abandoned
        self._max_in_flight = max_in_flight
        self._max_per_host = max_in_flight_per_host
        self._per_host: Counter[str] = Counter()
        self._waiters: Counter[asyncio.Task[LookupResult]] = Counter()

    def now(self) -> float:
        """The resolver's clock, the one `fresh_after` is measured on."""
        return self._clock()

    async def resolve(
        self,
        lookup: Lookup,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (a budget for the result, not a cancel scope)
        platforms: bool = False,
    ) -> ManifestDigest:
        """One lookup; raises its RegistryError."""
        result = (await self.resolve_many([lookup], timeout=timeout, platforms=platforms))[lookup]
        if isinstance(result, RegistryError):
            raise result
        return result

    async def resolve_many(
        self,
        lookups: Iterable[Lookup],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (shared lookups outlive it, see module doc)
        platforms: bool = False,
        fresh_after: float | None = None,
    ) -> dict[Lookup, LookupResult]:
        """Resolve every lookup (each unique key once); failures are returned, not raised.

        `fresh_after`: ignore cached answers to lookups that started before this `now()`.
        """
        results: dict[Lookup, LookupResult] = {}
        waiting: dict[Lookup, asyncio.Task[LookupResult]] = {}
        for lookup in dict.fromkeys(lookups):
            ref = lookup.reference
            if ref.digest is not None and not platforms:
                results[lookup] = ManifestDigest(digest=ref.digest, media_type="")
                continue
            key = lookup.key(platforms)
            cached = self.cache.get(key, stored_after=fresh_after)
            if cached is not None:
                self._note_cache("hit")
                results[lookup] = cached
                continue
            task = self._inflight.get(key)
            self._note_cache("miss" if task is None else "shared")
            if task is None:
                refused = self._refusal(lookup)
                if refused is not None:
                    results[lookup] = refused
                    continue
                task = self._start(key, lookup, platforms)
            waiting[lookup] = task

        if waiting:
            tasks = set(waiting.values())
            self._waiters.update(tasks)
            try:
                if timeout is None or timeout > 0:
                    await asyncio.wait(tasks, timeout=timeout)
            finally:
                self._leave(tasks)
            for lookup, task in waiting.items():
                if task.done() and not task.cancelled():
                    results[lookup] = task.result()
                else:
                    after = "" if self._cancel_abandoned else " (the lookup continues and fills the cache)"
                    results[lookup] = LookupTimeoutError(
                        f"no answer within {timeout or 0:.1f}s{after}",
                        registry=lookup.reference.registry,
                        reference=str(lookup.reference),
                    )
        return results

    def in_flight(self) -> int:
        """Lookups currently running (for tests and metrics)."""
        return len(self._inflight)

    async def aclose(self) -> None:
        """Cancel the lookups still running (the client is closed by its owner)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _refusal(self, lookup: Lookup) -> LookupRefusedError | None:
        host = lookup.reference.api_host
        if self._max_in_flight is not None and len(self._inflight) >= self._max_in_flight:
            what = f"{len(self._inflight)} lookups in flight"
        elif self._max_per_host is not None and self._per_host[host] >= self._max_per_host:
            what = f"{self._per_host[host]} lookups in flight at this registry"
        else:
            return None
        return LookupRefusedError(
            f"not looked up: {what} already",
            registry=lookup.reference.registry,
            reference=str(lookup.reference),
        )

    def _leave(self, tasks: Iterable[asyncio.Task[LookupResult]]) -> None:
        for task in tasks:
            self._waiters[task] -= 1
            if self._waiters[task] <= 0:
                del self._waiters[task]
                if self._cancel_abandoned and not task.done():
                    task.cancel()

    def _start(self, key: CacheKey, lookup: Lookup, platforms: bool) -> asyncio.Task[LookupResult]:
        task = asyncio.create_task(self._run(key, lookup, platforms, self._clock()), name=f"resolve {key[0]}")
        self._inflight[key] = task
        host = lookup.reference.api_host
        self._per_host[host] += 1

        def forget(done: asyncio.Task[LookupResult]) -> None:
            if self._inflight.get(key) is done:
                del self._inflight[key]
            self._per_host[host] -= 1
            if self._per_host[host] <= 0:
                del self._per_host[host]
                self._semaphores.pop(host, None)  # no task of this host is left to use it

        task.add_done_callback(forget)
        return task

    async def _run(self, key: CacheKey, lookup: Lookup, platforms: bool, since: float) -> LookupResult:
        ref = lookup.reference
        semaphore = self._semaphores.get(ref.api_host)
        if semaphore is None:
            semaphore = self._semaphores[ref.api_host] = asyncio.Semaphore(self._limit)
        async with semaphore:
            started = self._clock()
            try:
                result = await self.client.resolve(ref, lookup.credentials, platforms=platforms)
            except RegistryError as exc:
                return exc
            except Exception as exc:
                # A bug must not take the whole round down with it; it is logged with its traceback.
                log.exception("unexpected error resolving %s", ref)
                return BadResponseError(
                    f"unexpected {type(exc).__name__} while resolving",
                    registry=ref.registry,
                    reference=str(ref),
                )
            if self._on_lookup is not None:
                self._on_lookup(ref.registry, self._clock() - started)
        # Stored as of when the lookup started: an answer is no fresher than the request that got it.
        self.cache.put(key, result, at=since)
        return result

    def _note_cache(self, outcome: str) -> None:
        if self._on_cache is not None:
            self._on_cache(outcome)


__all__ = ["DigestResolver", "Lookup", "LookupRefusedError", "LookupResult"]
