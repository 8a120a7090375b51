"""The product's RegistryClient (and the resolver over it) against a hostile registry on a real
loopback socket (tests/harness/hostile.py): every lookup ends within its deadline, and every broken
answer is one typed RegistryError, never an httpx exception or a traceback."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autorollout.references import is_valid_digest, parse_image_reference
from autorollout.registry.client import RegistryClient
from autorollout.registry.errors import (
    BadResponseError,
    LookupTimeoutError,
    RateLimitedError,
    RegistryError,
    RegistryTlsError,
    UnreachableError,
)
from autorollout.registry.resolver import DigestResolver, Lookup
from autorollout.registry.retry import RetryPolicy
from tests.harness.hostile import MANIFEST_DIGEST, HostileRegistry, digest_of

pytestmark = pytest.mark.integration

DEADLINE = 1.5
# Reads time out after 1 s; the hostile peer sends a byte every 0.3 s, so they never do.
TIMEOUT = httpx.Timeout(connect=1.0, read=1.0, write=1.0, pool=1.0)
SLACK = 1.0  # a loaded 2-core machine; the bound asserted is the deadline plus this


def start(servers: list[HostileRegistry], behaviour: str, **options: object) -> HostileRegistry:
    server = HostileRegistry(behaviour, **options)  # type: ignore[arg-type]
    servers.append(server)
    return server


def wait_until_closed(server: HostileRegistry, within: float) -> bool:
    ends = time.monotonic() + within
    while server.open_connections() and time.monotonic() < ends:
        time.sleep(0.05)
    return server.open_connections() == 0


def client(deadline: float = DEADLINE, timeout: httpx.Timeout = TIMEOUT) -> RegistryClient:
    return RegistryClient(timeout=timeout, deadline=deadline, retry=RetryPolicy(base_delay=0.05))


async def timed_resolve(
    registry: RegistryClient, server: HostileRegistry, *, platforms: bool = False
) -> tuple[object, float]:
    """(digest or the RegistryError, seconds taken)."""
    image = parse_image_reference(f"{server.host}/team/app:v1")
    started = time.monotonic()
    try:
        result: object = (await registry.resolve(image, None, platforms=platforms)).digest
    except RegistryError as exc:
        result = exc
    return result, time.monotonic() - started


@pytest.mark.parametrize("behaviour", ["trickle-status", "trickle-headers", "trickle-body", "trickle-token"])
def test_a_trickling_peer_is_cut_off_at_the_deadline(hostile: list[HostileRegistry], behaviour: str) -> None:
    server = start(hostile, behaviour, interval=0.3)

    async def scenario() -> tuple[object, float]:
        async with client() as registry:
            return await timed_resolve(registry, server)

    error, seconds = asyncio.run(scenario())
    print(f"{behaviour}: {type(error).__name__} after {seconds:.2f} s, {server.trickled} bytes trickled")
    assert isinstance(error, LookupTimeoutError), error
    assert error.retryable
    assert "no answer within 1.5 s" in str(error)
    assert f"{server.host}/team/app:v1" in str(error)
    assert DEADLINE - 0.05 <= seconds < DEADLINE + SLACK
    # The peer kept sending (so no read timeout could fire), and the client hung up: the peer's
    # next bytes or the one after fail.
    assert server.trickled >= 3
    assert wait_until_closed(server, within=4 * 0.3 + SLACK)


def test_a_lookup_the_webhook_gave_up_on_ends_at_the_deadline_too(hostile: list[HostileRegistry]) -> None:
    server = start(hostile, "trickle-body", interval=0.3)
    image = parse_image_reference(f"{server.host}/team/app:v1")

    async def scenario() -> tuple[RegistryError | object, float, float]:
        async with client() as registry:
            resolver = DigestResolver(registry, cache_ttl=10, per_registry_limit=4)
            started = time.monotonic()
            result = (await resolver.resolve_many([Lookup(image)], timeout=0.3))[Lookup(image)]
            budget = time.monotonic() - started
            for _ in range(200):  # 10 s at most
                if not resolver.in_flight():
                    break
                await asyncio.sleep(0.05)
            ended = time.monotonic() - started
            await resolver.aclose()
            return result, budget, ended

    result, budget, ended = asyncio.run(scenario())
    print(f"budget answer after {budget:.2f} s; background lookup ended after {ended:.2f} s")
    assert isinstance(result, LookupTimeoutError)
    assert budget < 0.3 + SLACK
    assert DEADLINE - 0.05 <= ended < DEADLINE + SLACK


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        ("short-body", "broke off during the manifest"),
        ("reset-body", "failed during the manifest"),
        ("stall-body", "no answer from"),
    ],
)
def test_a_body_cut_short_is_unreachable_and_retried(
    hostile: list[HostileRegistry], behaviour: str, words: str
) -> None:
    server = start(hostile, behaviour)
    timeout = httpx.Timeout(connect=1.0, read=0.3, write=1.0, pool=1.0)

    async def scenario() -> tuple[object, float]:
        async with client(deadline=10, timeout=timeout) as registry:
            return await timed_resolve(registry, server, platforms=True)

    error, seconds = asyncio.run(scenario())
    gets = [r for r in server.requests if r.method == "GET"]
    print(f"{behaviour}: {error} after {seconds:.2f} s, {len(gets)} GETs")
    assert isinstance(error, UnreachableError), error
    assert error.retryable
    assert words in str(error)
    assert len(gets) == 3  # retried, bounded
    assert seconds < 3


@pytest.mark.parametrize(
    ("location", "problem"),
    [
        ("data:application/json,{}", "not an http(s) URL"),
        ("file:///etc/passwd", "not an http(s) URL"),
        ("ftp://127.0.0.1/x", "not an http(s) URL"),
        ("http://127.0.0.1:99999/v2/", "port 99999 is not in 1-65535"),
        ("http://127.0.0.1:65536/v2/", "port 65536 is not in 1-65535"),
        ("http://127.0.0.1:0/v2/", "port 0 is not in 1-65535"),
        ("http://[::1/v2/", "not a URL"),
        ("http://%zz/v2/", "not a host name"),
    ],
)
def test_an_unusable_location_is_a_bad_response_and_not_followed(
    hostile: list[HostileRegistry], location: str, problem: str
) -> None:
    server = start(hostile, "location", location=location)

    async def scenario() -> tuple[object, float]:
        async with client() as registry:
            return await timed_resolve(registry, server)

    error, seconds = asyncio.run(scenario())
    assert isinstance(error, BadResponseError), error
    assert problem in str(error)
    assert not error.retryable
    assert [r.method for r in server.requests] == ["HEAD"]  # one request: not retried, not followed
    assert seconds < 1


@pytest.mark.parametrize("expires_in", ["9" * 400, "-5", "NaN", "1e400", "Infinity", "true", '"300"', "0"])
def test_odd_expires_in_still_resolves(hostile: list[HostileRegistry], expires_in: str) -> None:
    server = start(hostile, "token", expires_in=expires_in)

    async def scenario() -> tuple[object, object, int]:
        async with client() as registry:
            first, _ = await timed_resolve(registry, server)
            second, _ = await timed_resolve(registry, server)
            return first, second, registry.auth_state.tokens_fetched

    first, second, fetched = asyncio.run(scenario())
    assert first == second == MANIFEST_DIGEST
    # A lifetime that came out as the 60 s default or the 1 h cap: the token is reused.
    assert fetched == 1


def index(*entries: dict[str, object]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": list(entries)}).encode()  # fmt: skip


@pytest.mark.parametrize(
    "digest", ["sha256:../../etc/passwd", "sha256:" + "A" * 64, "sha256:" + "a" * 64 + "\n", "md5:abc"]
)
def test_index_entries_with_invalid_digests_are_bad_responses(
    hostile: list[HostileRegistry], digest: str
) -> None:
    good = {"digest": "sha256:" + "a" * 64, "platform": {"os": "linux", "architecture": "amd64"}}
    server = start(hostile, "index", index_body=index(good, {"digest": digest, "platform": {}}))

    async def scenario() -> tuple[object, float]:
        async with client() as registry:
            return await timed_resolve(registry, server, platforms=True)

    error, _ = asyncio.run(scenario())
    assert isinstance(error, BadResponseError), error
    assert "index entry with an invalid digest" in str(error)
    assert "passwd" not in str(error)


def test_a_token_realm_with_a_port_out_of_range_is_refused(hostile: list[HostileRegistry]) -> None:
    server = start(hostile, "token", realm="http://127.0.0.1:99999/token")

    async def scenario() -> tuple[object, float]:
        async with client() as registry:
            return await timed_resolve(registry, server)

    error, seconds = asyncio.run(scenario())
    assert isinstance(error, BadResponseError), error
    assert "is not usable: port 99999 is not in 1-65535" in str(error)
    assert not any(r.path.startswith("/token") for r in server.requests)
    assert seconds < 1


def test_a_retry_that_would_outlast_the_deadline_is_not_made(hostile: list[HostileRegistry]) -> None:
    # Retry-After 3 s is normally waited for (the cap is 10 s); with 1.5 s left it is not.
    server = start(hostile, "rate-limited", retry_after="3")

    async def scenario() -> tuple[object, float]:
        async with client() as registry:
            return await timed_resolve(registry, server)

    error, seconds = asyncio.run(scenario())
    assert isinstance(error, RateLimitedError), error
    assert error.retry_after == 3
    assert len(server.requests) == 1
    assert seconds < 0.5 + SLACK / 2


def test_retries_that_fit_are_made_within_the_deadline(hostile: list[HostileRegistry]) -> None:
    server = start(hostile, "rate-limited", retry_after="1")

    async def scenario() -> tuple[object, float]:
        async with client(deadline=5) as registry:
            return await timed_resolve(registry, server)

    error, seconds = asyncio.run(scenario())
    assert isinstance(error, RateLimitedError), error
    assert len(server.requests) == 3  # 3 attempts, 1 s apart
    assert 2 <= seconds < 2 + SLACK


def test_a_redirect_to_a_port_that_does_not_speak_tls_is_a_tls_error(hostile: list[HostileRegistry]) -> None:
    # Only the registry's own loopback port falls back to plain HTTP, and the error names the host
    # that failed (before, it named the registry that redirected).
    plain = start(hostile, "rate-limited")
    server = start(hostile, "location", location=f"https://{plain.host}/v2/team/app/manifests/v1")

    async def scenario() -> tuple[object, float]:
        async with client() as registry:
            return await timed_resolve(registry, server)

    error, seconds = asyncio.run(scenario())
    assert isinstance(error, RegistryTlsError), error
    assert f"TLS handshake with {plain.host} failed" in str(error)
    assert plain.requests == []
    assert seconds < 1


def test_a_head_announcing_a_large_manifest_resolves_by_head(hostile: list[HostileRegistry]) -> None:
    # A HEAD's Content-Length is the GET body's size (here 50 KB, above the 16 KiB error-body cap).
    entries = [{"digest": f"sha256:{i:064x}", "platform": {"os": "linux", "architecture": "amd64"}}
               for i in range(400)]  # fmt: skip
    body = index(*entries)
    assert len(body) > 32 * 1024
    server = start(hostile, "index", index_body=body)

    async def scenario() -> tuple[object, float]:
        async with client() as registry:
            return await timed_resolve(registry, server)

    digest, _ = asyncio.run(scenario())
    assert digest == digest_of(body)
    assert [r.method for r in server.requests] == ["HEAD"]


_status_lines = st.sampled_from(
    [
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 302 Found",
        b"HTTP/1.1 401 Unauthorized",
        b"HTTP/1.1 503 x",
        b"HTTP/1.0 200",
        b"HTTP/1.1 999 odd",
        b"HTTP/9.9 200 OK",
        b"ICY 200 OK",
        b"HTTP/1.1 20",
        b"",
        b"\x00\xff",
    ]
)
_header_lines = st.sampled_from(
    [
        b"Content-Length: 5",
        b"Content-Length: -1",
        b"Content-Length: 99999999999999999999",
        b"Content-Length: 1, 2",
        b"Transfer-Encoding: chunked",
        b"Transfer-Encoding: gzip",
        b"Content-Encoding: gzip",
        b"Content-Encoding: br",
        b"Content-Type: application/vnd.oci.image.index.v1+json",
        b"Docker-Content-Digest: sha256:../../x",
        b"Docker-Content-Digest: " + MANIFEST_DIGEST.encode(),
        b"Location: data:,x",
        b"Location: http://127.0.0.1:99999/",
        b"Location: //",
        b"Location: \x7f",
        b'WWW-Authenticate: Bearer realm="http://127.0.0.1:99999/t"',
        b"WWW-Authenticate: Bearer realm=x",
        b"Retry-After: 99999999999999999999999",
        b"no colon",
        b" folded: x",
        b"X: \x1b[2J",
    ]
)
_bodies = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"0\r\n\r\n", b"zz\r\n", b"5\r\nab", b'{"manifests": [{"digest": "sha256:../x"}]}']),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_status_lines, st.lists(_header_lines, max_size=5), _bodies, st.booleans())
def test_any_answer_is_a_digest_or_a_registry_error(
    hostile: list[HostileRegistry], status: bytes, headers: list[bytes], body: bytes, platforms: bool
) -> None:
    if not hostile:
        start(hostile, "raw")
    server = hostile[0]
    server.raw = b"\r\n".join([status, *headers]) + b"\r\n\r\n" + body

    async def scenario() -> tuple[object, float]:
        async with client(deadline=3) as registry:
            return await timed_resolve(registry, server, platforms=platforms)

    outcome, seconds = asyncio.run(scenario())  # anything but a RegistryError or a digest raises here
    # A digest is the header's (checked) or the hash of a JSON object body, computed here.
    assert isinstance(outcome, RegistryError) or (isinstance(outcome, str) and is_valid_digest(outcome))
    assert seconds < 3 + SLACK
