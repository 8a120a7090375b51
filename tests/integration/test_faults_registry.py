"""Registry faults injected by tests/harness/faultproxy.py between the product's registry client (its
default retry policy and timeouts, as the CLI builds it) and the real registry. Every retry is
counted at the proxy: bounded retries, no storm, and an error instead of a wrong digest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autorollout.references import parse_image_reference
from autorollout.registry.client import RegistryClient
from autorollout.registry.errors import (
    BadResponseError,
    LookupTimeoutError,
    RateLimitedError,
    RegistryError,
    RegistryTlsError,
    ServerError,
    UnauthorizedError,
    UnreachableError,
)
from autorollout.registry.manifests import ManifestDigest
from autorollout.registry.resolver import DigestResolver, Lookup
from certs.mint import write_bundle
from tests.fixtures.registry import credentials_for
from tests.harness.faultproxy import FaultProxy
from tests.harness.registry import LocalRegistry
from tests.harness.tokenserver import SERVICE

pytestmark = pytest.mark.integration

ProxyFactory = Callable[..., FaultProxy]


@pytest.fixture
def proxy_to(registry_plain: LocalRegistry) -> Iterator[ProxyFactory]:
    """Fault proxies in front of a registry (the plain one unless `upstream=` names another)."""
    started: list[FaultProxy] = []

    def make(fault: str = "none", *, upstream: LocalRegistry | None = None, **kwargs: object) -> FaultProxy:
        proxy = FaultProxy((upstream or registry_plain).url, fault, **kwargs)  # type: ignore[arg-type]
        started.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in started:
            proxy.close()


def _resolve(
    proxy: FaultProxy, repository: str, *, client: RegistryClient | None = None, **kwargs: object
) -> str:
    image = parse_image_reference(f"{proxy.host}/{repository}:v1")

    async def scenario() -> str:
        async with client or RegistryClient() as own:
            return (await own.resolve(image, **kwargs)).digest  # type: ignore[arg-type]

    kwargs.setdefault("credentials", None)
    return asyncio.run(scenario())


def test_persistent_5xx_is_tried_three_times_then_reported(
    registry_plain: LocalRegistry, proxy_to: ProxyFactory, unique_repo: str
) -> None:
    registry_plain.push_image(unique_repo, "v1", seed=1)
    proxy = proxy_to("status", status=500)
    started = time.monotonic()
    with pytest.raises(ServerError, match="HTTP 500"):
        _resolve(proxy, unique_repo)
    assert proxy.seen == ["HEAD"] * 3
    assert time.monotonic() - started < 3


def test_429_retry_after_is_waited_for_once_and_a_long_one_is_not(
    registry_plain: LocalRegistry, proxy_to: ProxyFactory, unique_repo: str
) -> None:
    digest = registry_plain.push_image(unique_repo, "v1", seed=2)
    proxy = proxy_to("status", status=429, retry_after="1", times=1)
    assert _resolve(proxy, unique_repo) == digest
    first, second = proxy.requests
    assert second.at - first.at >= 1.0

    patient = proxy_to("status", status=429, retry_after="120")
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as caught:
        _resolve(patient, unique_repo)
    assert caught.value.retry_after == 120
    assert patient.seen == ["HEAD"]  # beyond the 10 s cap: reported, the next cycle tries again
    assert time.monotonic() - started < 2


def test_connection_resets_are_retried_a_bounded_number_of_times(
    registry_plain: LocalRegistry, proxy_to: ProxyFactory, unique_repo: str
) -> None:
    digest = registry_plain.push_image(unique_repo, "v1", seed=3)
    flaky = proxy_to("reset", times=1)
    assert _resolve(flaky, unique_repo) == digest
    assert flaky.seen == ["HEAD", "HEAD"]

    dead = proxy_to("reset")
    with pytest.raises(UnreachableError, match="connection"):
        _resolve(dead, unique_repo)
    assert dead.seen == ["HEAD"] * 3


def test_slow_registry_is_cut_off_by_the_lookup_budget_and_not_cached(
    registry_plain: LocalRegistry, proxy_to: ProxyFactory, unique_repo: str
) -> None:
    digest = registry_plain.push_image(unique_repo, "v1", seed=4)
    proxy = proxy_to("slow", delay=3.0)
    lookup = Lookup(parse_image_reference(f"{proxy.host}/{unique_repo}:v1"), None)

    async def scenario() -> tuple[ManifestDigest | RegistryError, float, ManifestDigest | RegistryError]:
        async with RegistryClient() as client:
            resolver = DigestResolver(client, cache_ttl=60, per_registry_limit=8)
            started = time.monotonic()
            slow = (await resolver.resolve_many([lookup], timeout=1.0))[lookup]
            elapsed = time.monotonic() - started
            proxy.fault = "none"
            await asyncio.sleep(2.5)  # the abandoned request finishes meanwhile
            fresh = (await resolver.resolve_many([lookup], timeout=1.0))[lookup]
            await resolver.aclose()
            return slow, elapsed, fresh

    slow, elapsed, fresh = asyncio.run(scenario())
    assert isinstance(slow, LookupTimeoutError)
    assert 0.9 <= elapsed < 1.5
    assert isinstance(fresh, ManifestDigest)
    assert fresh.digest == digest
    assert proxy.count("HEAD") <= 2  # the timed-out one (not retried) and the fresh one at most


def test_certificate_rotated_to_an_untrusted_one_is_a_tls_error_until_it_is_trusted_again(
    registry_plain: LocalRegistry, proxy_to: ProxyFactory, unique_repo: str, tmp_path: Path
) -> None:
    digest = registry_plain.push_image(unique_repo, "v1", seed=5)
    trusted = write_bundle(tmp_path / "trusted", ["localhost"], ["127.0.0.1"])
    rogue = write_bundle(tmp_path / "rogue", ["localhost"], ["127.0.0.1"], ca_name="rogue CA")
    proxy = proxy_to(tls=(trusted.tls_cert, trusted.tls_key))
    image = parse_image_reference(f"{proxy.host}/{unique_repo}:v1")

    async def scenario() -> None:
        async with RegistryClient(ca_paths=[str(trusted.ca_cert)]) as client:
            assert (await client.resolve(image, None)).digest == digest
            proxy.rotate_certificate(rogue.tls_cert, rogue.tls_key)
            served = len(proxy.requests)
            for _ in range(3):
                with pytest.raises(RegistryTlsError, match="not trusted"):
                    await client.resolve(image, None)
            assert len(proxy.requests) == served  # no request got through, none over plain HTTP
            errors = sum(n for (_, _, outcome), n in client.requests_total.items() if outcome == "error")
            assert errors == 3  # one handshake per lookup: TLS failures are not retried
            proxy.rotate_certificate(trusted.tls_cert, trusted.tls_key)
            assert (await client.resolve(image, None)).digest == digest

    asyncio.run(scenario())


# --- hostile answers ------------------------------------------------------------------------------


def test_html_page_instead_of_a_manifest_is_an_error_not_a_digest(
    registry_plain: LocalRegistry, proxy_to: ProxyFactory, unique_repo: str
) -> None:
    registry_plain.push_image(unique_repo, "v1", seed=6)
    proxy = proxy_to("non-json")
    with pytest.raises(BadResponseError, match="JSON"):
        _resolve(proxy, unique_repo)
    assert proxy.seen == ["HEAD", "GET"]  # not retried


def test_malformed_digest_header_is_not_trusted(
    registry_plain: LocalRegistry, proxy_to: ProxyFactory, unique_repo: str
) -> None:
    digest = registry_plain.push_image(unique_repo, "v1", seed=7)
    proxy = proxy_to("bad-digest-header")
    assert _resolve(proxy, unique_repo) == digest  # computed from the verified GET body instead
    assert proxy.seen == ["HEAD", "GET"]


@pytest.mark.parametrize(
    ("rewrite", "outcome"),
    [
        pytest.param(lambda h: f'Bearer service="{SERVICE}"', UnauthorizedError, id="missing-realm"),
        pytest.param(
            lambda h: h.replace(f'service="{SERVICE}"', f"service={SERVICE}"), None, id="unquoted-value"
        ),
        pytest.param(lambda h: h.replace("127.0.0.1", "localhost"), None, id="realm-on-another-host"),
        pytest.param(lambda h: 'Bearer realm="file:///etc/passwd"', BadResponseError, id="realm-not-http"),
        pytest.param(
            lambda h: 'Bearer realm="http://auth.example.invalid/token"',
            UnauthorizedError,
            id="plain-http-realm",
        ),
        pytest.param(lambda h: "Negotiate abc, Bearer", UnauthorizedError, id="unsupported-and-empty"),
    ],
)
def test_odd_auth_challenges(
    registry_token: LocalRegistry,
    proxy_to: ProxyFactory,
    unique_repo: str,
    rewrite: Callable[[str], str],
    outcome: type[RegistryError] | None,
) -> None:
    digest = registry_token.push_image(unique_repo, "v1", seed=8)
    tokens = registry_token.token_server
    assert tokens is not None
    proxy = proxy_to(
        "challenge",
        upstream=registry_token,
        rewrite_challenge=rewrite,
    )
    logins = tokens.request_count()
    if outcome is None:
        assert _resolve(proxy, unique_repo, credentials=credentials_for(registry_token)) == digest
        assert tokens.request_count() == logins + 1
    else:
        started = time.monotonic()
        with pytest.raises(outcome):
            _resolve(proxy, unique_repo, credentials=credentials_for(registry_token))
        assert time.monotonic() - started < 2
        assert tokens.request_count() == logins  # the credentials went nowhere
        assert proxy.count(authorized=True) == 0
