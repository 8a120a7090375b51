"""Pure parts of the registry client: Retry-After, backoff, manifest verification, index parsing,
the Artifactory repository-path URL, and the TTL cache."""

from __future__ import annotations

import datetime
import hashlib
import json

import pytest

from autorollout.registry.cache import TtlCache
from autorollout.registry.client import artifactory_fallback_path
from autorollout.registry.errors import (
    BadResponseError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
    UnreachableError,
)
from autorollout.registry.manifests import MANIFEST_ACCEPT, ManifestDigest, parse_index, verify_manifest
from autorollout.registry.retry import RetryPolicy
from autorollout.retry_after import parse_retry_after

pytestmark = pytest.mark.unit

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)


def test_accept_lists_index_types_first() -> None:
    assert MANIFEST_ACCEPT.split(", ") == [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Wed, 01 May 2024 12:00:30 GMT", 30.0),
        ("Wed, 01 May 2024 11:00:00 GMT", 0.0),  # in the past: retry now
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_backoff_only_for_retryable_errors_and_bounded() -> None:
    policy = RetryPolicy(attempts=3, base_delay=0.2, max_delay=2.0)
    for error in (NotFoundError("x"), UnauthorizedError("x"), BadResponseError("x")):
        assert policy.delay(1, error) is None
    for error in (ServerError("x"), UnreachableError("x"), RateLimitedError("x")):
        assert policy.delay(1, error, rand=lambda: 1.0) == pytest.approx(0.2)
        assert policy.delay(2, error, rand=lambda: 0.0) == pytest.approx(0.2)  # 0.4 with half jitter
        assert policy.delay(3, error) is None  # attempts used up


def test_backoff_jitter_range_and_cap() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.5, max_delay=2.0)
    assert policy.delay(8, UnreachableError("x"), rand=lambda: 1.0) == pytest.approx(2.0)
    assert policy.delay(8, UnreachableError("x"), rand=lambda: 0.0) == pytest.approx(1.0)


def test_retry_after_honoured_up_to_cap() -> None:
    policy = RetryPolicy(max_retry_after=10)
    assert policy.delay(1, RateLimitedError("x", retry_after=3)) == 3
    assert policy.delay(1, RateLimitedError("x", retry_after=60)) is None


def test_verify_manifest() -> None:
    body = b'{"schemaVersion":2}'
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    assert verify_manifest(body, None) == digest
    assert verify_manifest(body, digest) == digest
    assert verify_manifest(body, digest, pinned=digest) == digest
    sha512 = "sha512:" + hashlib.sha512(body).hexdigest()
    assert verify_manifest(body, sha512) == sha512
    with pytest.raises(BadResponseError, match="does not match its Docker-Content-Digest"):
        verify_manifest(body + b" ", digest)
    with pytest.raises(BadResponseError, match="requested digest"):
        verify_manifest(body + b" ", None, pinned=digest)
    with pytest.raises(BadResponseError, match="invalid Docker-Content-Digest"):
        verify_manifest(body, "md5:abc")


_A, _B, _C = (f"sha256:{ch * 64}" for ch in "abc")


def test_parse_index() -> None:
    body = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {"digest": _A, "mediaType": "m", "platform": {"os": "linux", "architecture": "amd64"}},
                {
                    "digest": _B,
                    "mediaType": "m",
                    "platform": {"os": "linux", "architecture": "arm", "variant": "v7"},
                },
                {"digest": _C, "mediaType": "m"},
            ],
        }
    ).encode()
    entries = parse_index(body)
    assert [e.platform for e in entries] == ["linux/amd64", "linux/arm/v7", "unknown/unknown"]
    assert [e.digest for e in entries] == [_A, _B, _C]
    for bad in (b"[]", b"{}", b'{"manifests": [{}]}', b"nope"):
        with pytest.raises(BadResponseError):
            parse_index(bad)


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:../../etc/passwd",
        "sha256:a",
        f"sha256:{'A' * 64}",
        f"sha256:{'a' * 64}\n",
        f" sha256:{'a' * 64}",
        f"sha256:{'a' * 63}\x1b",
        f"md5:{'a' * 32}",
        f"sha512:{'a' * 64}",
        "",
    ],
)
def test_index_entry_digests_are_validated_like_every_digest(digest: str) -> None:
    body = json.dumps({"manifests": [{"digest": _A}, {"digest": digest}]}).encode()
    with pytest.raises(BadResponseError, match="invalid digest") as info:
        parse_index(body)
    assert "passwd" not in str(info.value)


@pytest.mark.parametrize(
    ("repository", "reference", "path"),
    [
        ("docker-local/team/app", "1.0", "/artifactory/api/docker/docker-local/v2/team/app/manifests/1.0"),
        ("docker-remote/nginx", "latest", "/artifactory/api/docker/docker-remote/v2/nginx/manifests/latest"),
        ("single", "latest", None),
    ],
)
def test_artifactory_repository_path(repository: str, reference: str, path: str | None) -> None:
    assert artifactory_fallback_path(repository, reference) == path


def test_manifest_digest_defaults_keep_old_fields() -> None:
    result = ManifestDigest("sha256:x", "application/vnd.oci.image.index.v1+json")
    assert result.platform_digests == ()
    assert result.platforms == ()
    assert result.is_index


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_ttl_cache_expiry_eviction_and_zero_ttl() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(10, max_entries=2, clock=clock)
    cache.put("a", 1)
    clock.now = 5
    cache.put("b", 2)
    assert cache.get("a") == 1
    clock.now = 8
    cache.put("c", 3)  # full: the oldest entry goes
    assert cache.get("a") is None
    assert cache.get("b") == 2
    clock.now = 15.1
    assert cache.get("b") is None
    assert cache.get("c") == 3
    assert len(cache) == 1
    off: TtlCache[str, int] = TtlCache(0)
    off.put("a", 1)
    assert off.get("a") is None
    with pytest.raises(ValueError, match="negative"):
        TtlCache(-1)


def test_ttl_cache_stored_after_hides_older_entries_from_that_caller_only() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(10, clock=clock)
    cache.put("a", 1, at=2.0)  # a lookup that started at 2 and ended now (5)
    clock.now = 5
    assert cache.get("a", stored_after=2.0) == 1
    assert cache.get("a", stored_after=3.0) is None  # started before the caller's cut-off
    assert cache.get("a") == 1  # kept for callers without one
    clock.now = 12.0
    assert cache.get("a") is None  # the TTL counts from when the answer was true
