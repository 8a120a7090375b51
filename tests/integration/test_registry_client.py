"""RegistryClient against a real docker-registry in every set-up (plain, tls, basic, token)."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from autorollout.registry.client import OCI_INDEX, OCI_MANIFEST, ManifestDigest
from autorollout.registry.errors import NotFoundError
from tests.fixtures.registry import client_for, credentials_for, ref
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.integration

CLIENT_AGENT = "kube-autorollout/"


def test_tag_moved_gives_new_digest(any_registry: LocalRegistry, unique_repo: str) -> None:
    first = any_registry.push_image(unique_repo, "main", seed=1)

    async def scenario() -> tuple[str, str]:
        async with client_for(any_registry) as client:
            before = await client.resolve(
                ref(any_registry, unique_repo, "main"), credentials_for(any_registry)
            )
            any_registry.push_image(unique_repo, "main", seed=2)
            after = await client.resolve(
                ref(any_registry, unique_repo, "main"), credentials_for(any_registry)
            )
            return before.digest, after.digest

    before, after = asyncio.run(scenario())
    assert before == first
    assert after != before
    assert after == any_registry.push_image(unique_repo, "main", seed=2)  # same content, same digest
    assert (
        any_registry.request_count("GET", f"/v2/{unique_repo}/manifests", user_agent_substring=CLIENT_AGENT)
        == 0
    )


def test_index_digest_by_head_and_platform_digests_by_get(
    any_registry: LocalRegistry, unique_repo: str
) -> None:
    index_digest, by_platform = any_registry.push_index(unique_repo, "latest", seed=3)
    creds = credentials_for(any_registry)

    async def scenario() -> tuple[ManifestDigest, ManifestDigest]:
        async with client_for(any_registry) as client:
            plain = await client.resolve(ref(any_registry, unique_repo), creds)
            heads = any_registry.request_count("HEAD", unique_repo, status=200)
            gets = any_registry.request_count("GET", unique_repo, user_agent_substring=CLIENT_AGENT)
            assert (heads, gets) == (1, 0)
            detailed = await client.resolve(ref(any_registry, unique_repo, "latest"), creds, platforms=True)
            return plain, detailed

    plain, detailed = asyncio.run(scenario())
    # What the kubelet records for a pull by tag is the index digest, and HEAD gives exactly that.
    assert plain.digest == index_digest
    assert plain.media_type == OCI_INDEX
    assert detailed.digest == index_digest
    platforms = {p.platform: p.digest for p in detailed.platforms}
    assert platforms == by_platform
    assert set(detailed.platform_digests) == set(by_platform.values())
    assert index_digest not in detailed.platform_digests
    assert all(p.media_type == OCI_MANIFEST for p in detailed.platforms)


def test_single_manifest_with_platforms_has_no_entries(
    registry_plain: LocalRegistry, unique_repo: str
) -> None:
    digest = registry_plain.push_image(unique_repo, "v1", seed=4)

    async def scenario() -> ManifestDigest:
        async with client_for(registry_plain) as client:
            return await client.resolve(ref(registry_plain, unique_repo, "v1"), None, platforms=True)

    result = asyncio.run(scenario())
    assert result.digest == digest
    assert result.media_type == OCI_MANIFEST
    assert result.platforms == ()


def test_unknown_tag_and_unknown_repository_are_not_found(
    any_registry: LocalRegistry, unique_repo: str
) -> None:
    any_registry.push_image(unique_repo, "v1", seed=5)
    creds = credentials_for(any_registry)

    async def scenario() -> tuple[NotFoundError, NotFoundError]:
        async with client_for(any_registry) as client:
            with pytest.raises(NotFoundError) as tag_missing:
                await client.resolve(ref(any_registry, unique_repo, "nope"), creds)
            with pytest.raises(NotFoundError) as repo_missing:
                await client.resolve(ref(any_registry, unique_repo + "-absent", "v1"), creds)
            return tag_missing.value, repo_missing.value

    tag_missing, repo_missing = asyncio.run(scenario())
    assert "'nope'" in str(tag_missing)
    assert tag_missing.reference == f"{any_registry.host}/{unique_repo}:nope"
    assert tag_missing.registry == any_registry.host
    assert f"{unique_repo}-absent" in str(repo_missing)
    # 404 is not retried.
    assert any_registry.request_count("HEAD", f"{unique_repo}/manifests/nope", status=404) == 1


def test_a_plain_http_loopback_registry_counts_one_successful_head(
    registry_plain: LocalRegistry, unique_repo: str
) -> None:
    """Finding that a loopback port speaks plain HTTP (TLS first, as Docker does) is not a failed request."""
    digest = registry_plain.push_image(unique_repo, "v1", seed=7)
    counted: list[tuple[str, str, str]] = []

    async def scenario() -> str:
        async with client_for(registry_plain, on_request=lambda *seen: counted.append(seen)) as client:
            return (await client.resolve(ref(registry_plain, unique_repo, "v1"), None)).digest

    assert asyncio.run(scenario()) == digest
    assert counted == [(registry_plain.host, "HEAD", "200")]


def test_pinned_digest_needs_no_request(registry_plain: LocalRegistry, unique_repo: str) -> None:
    digest = registry_plain.push_image(unique_repo, "v1", seed=6)

    async def scenario() -> str:
        async with client_for(registry_plain) as client:
            pinned = dataclasses.replace(ref(registry_plain, unique_repo, "v1"), digest=digest)
            return (await client.resolve(pinned, None)).digest

    assert asyncio.run(scenario()) == digest
    assert registry_plain.request_count(path_substring=unique_repo, user_agent_substring=CLIENT_AGENT) == 0


def test_get_by_digest_is_verified(registry_plain: LocalRegistry, unique_repo: str) -> None:
    index_digest, by_platform = registry_plain.push_index(unique_repo, "multi", seed=7)

    async def scenario() -> ManifestDigest:
        async with client_for(registry_plain) as client:
            pinned = dataclasses.replace(ref(registry_plain, unique_repo), digest=index_digest)
            return await client.resolve(pinned, None, platforms=True)

    result = asyncio.run(scenario())
    assert result.digest == index_digest
    assert set(result.platform_digests) == set(by_platform.values())


def test_head_round_trip_is_fast(registry_plain: LocalRegistry, unique_repo: str) -> None:
    registry_plain.push_image(unique_repo, "v1", seed=8)

    async def scenario() -> list[float]:
        async with client_for(registry_plain) as client:
            image = ref(registry_plain, unique_repo, "v1")
            await client.resolve(image, None)  # connection and http fallback settled
            timings = []
            for _ in range(20):
                started = time.perf_counter()
                await client.resolve(image, None)
                timings.append(time.perf_counter() - started)
            return sorted(timings)

    timings = asyncio.run(scenario())
    assert timings[len(timings) // 2] < 0.05, timings
