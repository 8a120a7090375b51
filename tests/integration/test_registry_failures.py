"""Failure modes against real endpoints: untrusted TLS, stopped registry, silent port, bad manifests
through a fault-injecting proxy in front of the real registry (tests/harness/faultproxy.py)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from autorollout.references import parse_image_reference
from autorollout.registry.client import RegistryClient
from autorollout.registry.errors import (
    BadResponseError,
    RegistryConfigError,
    RegistryTlsError,
    UnreachableError,
)
from autorollout.registry.retry import RetryPolicy
from certs.mint import mint_ca
from tests.fixtures.registry import client_for, ref
from tests.harness.faultproxy import FaultProxy as _FaultyProxy
from tests.harness.registry import LocalRegistry, Mode

pytestmark = pytest.mark.integration


def _errors(client: RegistryClient) -> int:
    return sum(n for (_, _, outcome), n in client.requests_total.items() if outcome == "error")


def test_untrusted_certificate_is_a_tls_error_without_http_fallback(
    registry_tls: LocalRegistry, unique_repo: str
) -> None:
    registry_tls.push_image(unique_repo, "v1", seed=1)

    async def scenario() -> RegistryTlsError:
        async with RegistryClient() as client:  # system trust only: the test CA is missing
            with pytest.raises(RegistryTlsError) as caught:
                await client.resolve(ref(registry_tls, unique_repo, "v1"), None)
            # One attempt, not retried, and no second one over plain HTTP (the registry would have
            # answered that with a 400: a BadResponseError, not this error).
            assert _errors(client) == 1
            assert sum(client.requests_total.values()) == 1
            return caught.value

    started = time.monotonic()
    error = asyncio.run(scenario())
    assert time.monotonic() - started < 2
    assert "tls.caCertificatePaths" in str(error)
    assert "certificate" in str(error)


def test_certificate_from_another_ca_is_a_tls_error(
    registry_tls: LocalRegistry, unique_repo: str, tmp_path: Path
) -> None:
    registry_tls.push_image(unique_repo, "v1", seed=2)
    other_ca = tmp_path / "other-ca.crt"
    other_ca.write_bytes(mint_ca("some other CA")[0])

    async def scenario() -> None:
        async with RegistryClient(ca_paths=[str(other_ca)]) as client:
            with pytest.raises(RegistryTlsError):
                await client.resolve(ref(registry_tls, unique_repo, "v1"), None)

    asyncio.run(scenario())


def test_ca_directory_is_trusted(registry_tls: LocalRegistry, unique_repo: str, tmp_path: Path) -> None:
    digest = registry_tls.push_image(unique_repo, "v1", seed=3)
    ca_dir = tmp_path / "cas"
    ca_dir.mkdir()
    assert registry_tls.ca_file is not None
    (ca_dir / "ca.crt").write_bytes(registry_tls.ca_file.read_bytes())
    (ca_dir / "other.crt").write_bytes(mint_ca("another")[0])

    async def scenario() -> str:
        async with RegistryClient(ca_paths=[str(ca_dir)]) as client:
            return (await client.resolve(ref(registry_tls, unique_repo, "v1"), None)).digest

    assert asyncio.run(scenario()) == digest


def test_missing_ca_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ca.crt"
    with pytest.raises(RegistryConfigError, match=str(missing)):
        RegistryClient(ca_paths=[str(missing)])
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate")
    with pytest.raises(RegistryConfigError, match=str(garbage)):
        RegistryClient(ca_paths=[str(garbage)])


@pytest.mark.parametrize("mode", ["plain", "tls"])
def test_stopped_registry_is_unreachable_quickly(
    registry_factory: Callable[[Mode], LocalRegistry], mode: Mode
) -> None:
    registry = registry_factory(mode)
    registry.push_image("gone/app", "v1", seed=4)
    image = ref(registry, "gone/app", "v1")

    async def scenario() -> None:
        async with client_for(registry) as client:
            await client.resolve(image, None)  # reachable while it runs
            registry.stop()
            errors_before = _errors(client)
            started = time.monotonic()
            with pytest.raises(UnreachableError, match="connect"):
                await client.resolve(image, None)
            assert time.monotonic() - started < 5
            # connection refused is retried (3 attempts in all), then reported
            assert _errors(client) - errors_before == 3

    asyncio.run(scenario())


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never says anything."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def test_silent_registry_times_out_as_unreachable(silent_port: int) -> None:
    image = parse_image_reference(f"127.0.0.1:{silent_port}/x/y:v1")

    async def scenario() -> None:
        timeout = httpx.Timeout(connect=0.5, read=0.3, write=0.3, pool=0.3)
        async with RegistryClient(timeout=timeout, retry=RetryPolicy(attempts=1)) as client:
            with pytest.raises(UnreachableError, match="in time"):
                await client.resolve(image, None)

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 2


@pytest.fixture
def faulty_proxy(registry_plain: LocalRegistry) -> Iterator[Callable[[str], _FaultyProxy]]:
    proxies: list[_FaultyProxy] = []

    def make(fault: str) -> _FaultyProxy:
        proxy = _FaultyProxy(registry_plain.url, fault)
        proxies.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.close()


def _resolve_through(proxy: _FaultyProxy, repository: str, *, platforms: bool = False) -> str:
    image = parse_image_reference(f"{proxy.host}/{repository}:v1")

    async def scenario() -> str:
        async with RegistryClient(retry=RetryPolicy(base_delay=0.01)) as client:
            return (await client.resolve(image, None, platforms=platforms)).digest

    return asyncio.run(scenario())


@pytest.mark.parametrize("fault", ["no-digest-on-head", "head-405"])
def test_get_fallback_when_head_gives_no_digest(
    registry_plain: LocalRegistry, faulty_proxy: Callable[[str], _FaultyProxy], unique_repo: str, fault: str
) -> None:
    index_digest = registry_plain.push_image(
        unique_repo, "v1", platforms=["linux/amd64", "linux/arm64"], seed=5
    )
    proxy = faulty_proxy(fault)
    assert _resolve_through(proxy, unique_repo) == index_digest
    assert proxy.seen == ["HEAD", "GET"]


def test_body_not_matching_digest_is_a_bad_response(
    registry_plain: LocalRegistry, faulty_proxy: Callable[[str], _FaultyProxy], unique_repo: str
) -> None:
    registry_plain.push_image(unique_repo, "v1", seed=6)
    proxy = faulty_proxy("tampered-body")
    with pytest.raises(BadResponseError, match="does not match"):
        _resolve_through(proxy, unique_repo, platforms=True)
    assert proxy.seen == ["GET"]  # not retried


def test_oversized_manifest_is_refused(
    registry_plain: LocalRegistry, faulty_proxy: Callable[[str], _FaultyProxy], unique_repo: str
) -> None:
    registry_plain.push_image(unique_repo, "v1", seed=7)
    proxy = faulty_proxy("huge-body")
    with pytest.raises(BadResponseError, match="bytes"):
        _resolve_through(proxy, unique_repo, platforms=True)


def test_server_errors_are_retried(
    registry_plain: LocalRegistry, faulty_proxy: Callable[[str], _FaultyProxy], unique_repo: str
) -> None:
    digest = registry_plain.push_image(unique_repo, "v1", seed=8)
    proxy = faulty_proxy("503-then-ok")
    assert _resolve_through(proxy, unique_repo) == digest
    assert proxy.seen == ["HEAD", "HEAD", "HEAD"]
