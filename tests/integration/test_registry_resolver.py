"""DigestResolver against the real registry: one request per unique image, shared in-flight lookups,
TTL cache, per-registry concurrency limit and the caller's time budget."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from autorollout.references import parse_image_reference
from autorollout.registry.client import ManifestDigest, RegistryClient
from autorollout.registry.errors import LookupTimeoutError, NotFoundError
from autorollout.registry.resolver import DigestResolver, Lookup
from tests.fixtures.registry import client_for, credentials_for
from tests.harness.registry import LocalRegistry

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


class _Tarpit:
    """A loopback port that accepts connections, counts them and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def tarpit() -> Iterator[_Tarpit]:
    pit = _Tarpit()
    try:
        yield pit
    finally:
        pit.close()


def test_timeout_reports_unfinished_and_keeps_the_rest(
    registry_plain: LocalRegistry, tarpit: _Tarpit, unique_repo: str
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
