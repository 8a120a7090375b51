"""DigestResolver against the real registry: one request per unique image, shared in-flight lookups,
TTL cache, per-registry concurrency limit, the caller's time budget, cancelled abandoned lookups,
in-flight caps, and silent registries (tarpits) that never delay a healthy one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from autorollout.cli.wiring import open_admission_resolver, open_resolver
from autorollout.config import Config
from autorollout.references import parse_image_reference
from autorollout.registry.client import RegistryClient
from autorollout.registry.errors import LookupTimeoutError, NotFoundError
from autorollout.registry.manifests import ManifestDigest
from autorollout.registry.resolver import DigestResolver, Lookup, LookupRefusedError
from tests.fixtures.registry import client_for, credentials_for
from tests.harness.registry import LocalRegistry
from tests.harness.tarpit import Tarpit

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_twenty_references_over_three_images_cost_three_heads(
    any_registry: LocalRegistry, unique_repo: str
) -> None:
    repos = [f"{unique_repo}/{name}" for name in ("a", "b", "c")]
    digests = {repo: any_registry.push_image(repo, "latest", seed=i) for i, repo in enumerate(repos)}
    host = any_registry.host
    # Different spellings of the same three images: with and without ":latest", repeated.
    texts = [f"{host}/{repos[i % 3]}" + (":latest" if i % 2 else "") for i in range(20)]
    creds = credentials_for(any_registry)
    lookups = [Lookup(parse_image_reference(text), creds) for text in texts]

    async def scenario() -> dict[Lookup, ManifestDigest | Exception]:
        async with client_for(any_registry) as client:
            resolver = DigestResolver(client, cache_ttl=10, per_registry_limit=4)
            return dict(await resolver.resolve_many(lookups))

    results = asyncio.run(scenario())
    assert len(results) == len({(lk.reference, lk.credentials) for lk in lookups}) == 6
    for lookup, result in results.items():
        assert isinstance(result, ManifestDigest)
        assert result.digest == digests[lookup.reference.repository]
    assert any_registry.request_count("HEAD", unique_repo, status=200) == 3
    assert any_registry.request_count("GET", unique_repo) == 0


def test_concurrent_misses_share_one_request(registry_plain: LocalRegistry, unique_repo: str) -> None:
    digest = registry_plain.push_image(unique_repo, "v1", seed=1)
    lookup = Lookup(parse_image_reference(f"{registry_plain.host}/{unique_repo}:v1"))

    async def scenario() -> list[dict[Lookup, ManifestDigest | Exception]]:
        async with client_for(registry_plain) as client:
            resolver = DigestResolver(client, cache_ttl=10, per_registry_limit=4)
            # A webhook request and a reconcile cycle asking at the same moment.
            results = await asyncio.gather(*(resolver.resolve_many([lookup]) for _ in range(5)))
            return [dict(r) for r in results]

    for result in asyncio.run(scenario()):
        found = result[lookup]
        assert isinstance(found, ManifestDigest)
        assert found.digest == digest
    assert registry_plain.request_count("HEAD", unique_repo) == 1


def test_cache_ttl_and_failures_not_cached(registry_plain: LocalRegistry, unique_repo: str) -> None:
    clock = Clock()
    lookup = Lookup(parse_image_reference(f"{registry_plain.host}/{unique_repo}:v1"))

    async def scenario() -> None:
        async with client_for(registry_plain) as client:
            resolver = DigestResolver(client, cache_ttl=10, per_registry_limit=4, clock=clock)
            missing = (await resolver.resolve_many([lookup]))[lookup]
            assert isinstance(missing, NotFoundError)
            first = registry_plain.push_image(unique_repo, "v1", seed=2)
            # the 404 was not cached: the pushed image is found right away
            assert (await resolver.resolve(lookup)).digest == first
            registry_plain.push_image(unique_repo, "v1", seed=3)
            clock.now += 9
            assert (await resolver.resolve(lookup)).digest == first  # cached, no request
            assert registry_plain.request_count("HEAD", unique_repo) == 2
            clock.now += 2
            assert (await resolver.resolve(lookup)).digest != first  # expired: asked again
            assert registry_plain.request_count("HEAD", unique_repo) == 3

    asyncio.run(scenario())


@pytest.fixture
def tarpit() -> Iterator[Tarpit]:
    pit = Tarpit()
    try:
        yield pit
    finally:
        pit.close()


def test_timeout_reports_unfinished_and_keeps_the_rest(
    registry_plain: LocalRegistry, tarpit: Tarpit, unique_repo: str
) -> None:
    digest = registry_plain.push_image(unique_repo, "v1", seed=4)
    fast = Lookup(parse_image_reference(f"{registry_plain.host}/{unique_repo}:v1"))
    slow = [Lookup(parse_image_reference(f"127.0.0.1:{tarpit.port}/stuck/app{i}:v1")) for i in range(3)]

    async def scenario() -> None:
        async with RegistryClient() as client:
            resolver = DigestResolver(client, cache_ttl=10, per_registry_limit=1)
            results = await resolver.resolve_many([fast, *slow], timeout=0.5)
            found = results[fast]
            assert isinstance(found, ManifestDigest)
            assert found.digest == digest
            for lookup in slow:
                assert isinstance(results[lookup], LookupTimeoutError)
                assert str(lookup.reference) in str(results[lookup])
            # The shared lookups keep running in the background; with a limit of 1 per registry only
            # one of them has a connection open at the silent registry.
            assert resolver.in_flight() == 3
            assert len(tarpit.accepted) == 1
            await resolver.aclose()
            assert resolver.in_flight() == 0

    asyncio.run(scenario())


def test_pinned_references_cost_nothing(registry_plain: LocalRegistry, unique_repo: str) -> None:
    digest = registry_plain.push_image(unique_repo, "v1", seed=5)
    lookup = Lookup(parse_image_reference(f"{registry_plain.host}/{unique_repo}:v1@{digest}"))

    async def scenario() -> None:
        async with client_for(registry_plain) as client:
            resolver = DigestResolver(client, cache_ttl=10, per_registry_limit=4)
            assert (await resolver.resolve(lookup)).digest == digest

    asyncio.run(scenario())
    assert registry_plain.request_count(path_substring=unique_repo) == 0


def test_fresh_after_sees_a_push_the_cache_would_hide_and_asks_once(
    registry_plain: LocalRegistry, unique_repo: str
) -> None:
    clock = Clock()
    lookup = Lookup(parse_image_reference(f"{registry_plain.host}/{unique_repo}:v1"))
    first = registry_plain.push_image(unique_repo, "v1", seed=4)

    async def scenario() -> None:
        async with client_for(registry_plain) as client:
            resolver = DigestResolver(client, cache_ttl=60, per_registry_limit=4, clock=clock)
            assert (await resolver.resolve(lookup)).digest == first  # cycle 1 (or the webhook)
            moved = registry_plain.push_image(unique_repo, "v1", seed=5)
            clock.now += 3  # the next cycle starts: entries stored before it are not believed
            cycle = resolver.now()
            got = await resolver.resolve_many([lookup, lookup], fresh_after=cycle)
            assert got[lookup] == (await resolver.resolve_many([lookup], fresh_after=cycle))[lookup]
            found = got[lookup]
            assert isinstance(found, ManifestDigest)
            assert found.digest == moved
            assert registry_plain.request_count("HEAD", unique_repo) == 2  # one per cycle, not per call
            assert (await resolver.resolve(lookup)).digest == moved  # the webhook gets the fresh entry

    asyncio.run(scenario())


def _stuck(pits: list[Tarpit], per_pit: int) -> list[Lookup]:
    return [
        Lookup(parse_image_reference(f"{pit.host}/stuck/app{i}:v1")) for pit in pits for i in range(per_pit)
    ]


def test_abandoned_lookups_are_cancelled_unless_someone_still_waits(tarpit: Tarpit) -> None:
    slow = _stuck([tarpit], 3)

    async def scenario() -> None:
        async with RegistryClient() as client:
            resolver = DigestResolver(client, cache_ttl=10, per_registry_limit=2, cancel_abandoned=True)
            # A second caller with a longer budget keeps slow[0] alive when the first gives up.
            patient = asyncio.create_task(resolver.resolve_many(slow[:1], timeout=2.0))
            results = await resolver.resolve_many(slow, timeout=0.3)
            assert all(isinstance(results[x], LookupTimeoutError) for x in slow)
            await asyncio.sleep(0.05)
            assert resolver.in_flight() == 1
            assert isinstance((await patient)[slow[0]], LookupTimeoutError)
            await asyncio.sleep(0.05)
            assert resolver.in_flight() == 0

    asyncio.run(scenario())


def test_in_flight_caps_refuse_new_lookups_at_once(registry_plain: LocalRegistry, unique_repo: str) -> None:
    registry_plain.push_image(unique_repo, "v1", seed=6)
    healthy = Lookup(parse_image_reference(f"{registry_plain.host}/{unique_repo}:v1"))
    with Tarpit() as first, Tarpit() as second:
        at_first, at_second = _stuck([first], 3), _stuck([second], 1)

        async def scenario() -> dict[Lookup, ManifestDigest | Exception]:
            async with RegistryClient() as client:
                resolver = DigestResolver(
                    client,
                    cache_ttl=10,
                    per_registry_limit=8,
                    cancel_abandoned=True,
                    max_in_flight=3,
                    max_in_flight_per_host=2,
                )
                return dict(await resolver.resolve_many([*at_first, *at_second, healthy], timeout=0.3))

        results = asyncio.run(scenario())
    assert [type(results[x]).__name__ for x in at_first] == [
        "LookupTimeoutError",
        "LookupTimeoutError",
        "LookupRefusedError",
    ]
    assert isinstance(results[at_second[0]], LookupTimeoutError)
    assert isinstance(results[healthy], LookupRefusedError)  # 3 in flight in all
    assert "lookups in flight" in str(results[healthy])
    assert registry_plain.request_count(path_substring=unique_repo) == 0


def test_slow_registries_hold_only_their_own_connections(
    registry_plain: LocalRegistry, unique_repo: str
) -> None:
    """72 lookups stuck at 9 silent registries, in either half, never delay a healthy registry's."""
    digests = [registry_plain.push_image(f"{unique_repo}/{i}", "v1", seed=10 + i) for i in range(4)]
    healthy = [Lookup(parse_image_reference(f"{registry_plain.host}/{unique_repo}/{i}:v1")) for i in range(4)]
    pits = [Tarpit() for _ in range(9)]
    config = Config.model_validate({"digestCacheTtlSeconds": 0})
    try:

        async def scenario() -> list[float]:
            elapsed = []
            async with (
                open_resolver(config) as reconciler,
                open_admission_resolver(config, reconciler) as admission,
            ):
                # The reconciler's cycle waits for its 72 stuck lookups; a review does the same.
                cycle = asyncio.create_task(reconciler.resolve_many(_stuck(pits, 8)))
                review = asyncio.create_task(admission.resolve_many(_stuck(pits, 8), timeout=3.0))
                await asyncio.sleep(0.3)
                for resolver, lookup, digest in zip(
                    (admission, reconciler, admission, reconciler), healthy, digests, strict=True
                ):
                    started = time.monotonic()
                    found = await resolver.resolve(lookup, timeout=1.0)
                    elapsed.append(time.monotonic() - started)
                    assert found.digest == digest
                assert sum(len(p.accepted) for p in pits) >= 9 * 8  # both halves really were stuck
                cycle.cancel()
                await asyncio.gather(cycle, review, return_exceptions=True)
            return elapsed

        elapsed = asyncio.run(scenario())
    finally:
        for pit in pits:
            pit.close()
    assert max(elapsed) < 1.0, elapsed
    print(f"healthy lookups next to 144 stuck ones: {', '.join(f'{x * 1000:.0f} ms' for x in elapsed)}")
