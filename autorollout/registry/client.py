"""Resolve an image tag to its manifest digest through the OCI distribution manifests endpoint.

`HEAD /v2/<repository>/manifests/<tag>` first (free at Docker Hub), with the Accept list containerd
sends so the digest is the one the kubelet records (the index digest for multi-arch images); `GET`
only when HEAD gives no `Docker-Content-Digest`, or when the platform manifests are wanted, and then
the body is verified against the digest.

Plain HTTP: registries are spoken to over HTTPS. For loopback hosts only (localhost, 127.0.0.0/8,
::1) a TLS *protocol* failure (the port speaks plain HTTP) falls back to HTTP, as Docker does for
localhost; the choice is remembered per host for the client's lifetime. A certificate that does not
verify is never a reason to fall back: it is a RegistryTlsError. A redirect from HTTPS to plain
HTTP is only followed to a loopback host.

Deadline: every lookup (connect, TLS, token fetch, status line, headers, body, retries and their
backoff) ends within the client's `deadline` (`lookupTimeoutSeconds`) with a LookupTimeoutError,
however slowly the peer trickles its answer: httpx's timeouts are per read, not per exchange. A
retry whose backoff would outlast the deadline is not made; the last error is reported instead.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import hashlib
import json
import os
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from autorollout import __version__
from autorollout.references import is_valid_digest
from autorollout.registry.auth import (
    AuthState,
    Clock,
    RegistryAuth,
    Sent,
    is_loopback_host,
    repository_scope,
    ssl_cause,
)
from autorollout.registry.authorization import redact, secret_forms
from autorollout.registry.errors import (
    BadResponseError,
    ForbiddenError,
    LookupTimeoutError,
    NotFoundError,
    RateLimitedError,
    RegistryConfigError,
    RegistryError,
    RegistryTlsError,
    ServerError,
    UnauthorizedError,
    UnreachableError,
)
from autorollout.registry.pools import HostPools
from autorollout.registry.wire import read_capped, redirect_target, transport_error

if TYPE_CHECKING:
    from autorollout.credentials import RegistryCredentials
    from autorollout.references import ImageReference

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# containerd's order: list types first, or a registry may answer with one platform's manifest.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
ARTIFACTORY_HEADERS = ("x-artifactory-id", "x-jfrog-version", "x-artifactory-node-id")
DEFAULT_TIMEOUT = httpx.Timeout(connect=3.0, read=10.0, write=10.0, pool=10.0)
DEFAULT_DEADLINE = 30.0
_ERROR_DETAIL_BYTES = 16 * 1024
# Above what callers run against one host at once (DigestResolver limits), so the pool never waits.
DEFAULT_CONNECTIONS_PER_HOST = 32

RequestObserver = Callable[[str, str, str], None]


@dataclass(frozen=True, slots=True)
class PlatformManifest:
    """One entry of an image index / manifest list."""

    digest: str
    media_type: str
    os: str
    architecture: str
    variant: str | None = None

    @property
    def platform(self) -> str:
        """ "linux/arm64" or "linux/arm/v7"."""
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)


@dataclass(frozen=True, slots=True)
class ManifestDigest:
    """The digest a tag points to; for an index (when asked for) the platform manifests in it."""

    digest: str
    media_type: str
    platform_digests: tuple[str, ...] = ()
    platforms: tuple[PlatformManifest, ...] = ()

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with jittered exponential backoff, for 5xx, 429 and network failures only."""

    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 2.0
    # A longer Retry-After is not waited for: the error is reported and the next cycle tries again.
    max_retry_after: float = 10.0

    def delay(
        self, failed_attempt: int, error: RegistryError, rand: Callable[[], float] = random.random
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up (`failed_attempt` counts from 1)."""
        if not error.retryable or failed_attempt >= self.attempts:
            return None
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_retry_after else None
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (failed_attempt - 1))
        return backoff * (0.5 + rand() / 2)


def parse_retry_after(value: str | None, now: datetime.datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None when absent or invalid."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # not "²": isdigit() takes Unicode digits float() refuses
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    current = now or datetime.datetime.now(datetime.UTC)
    return max(0.0, (when - current).total_seconds())


def artifactory_fallback_path(repository: str, reference: str) -> str | None:
    """JFrog's "repository path method": /artifactory/api/docker/<repo-key>/v2/<image>/manifests/<ref>,
    the repo key being the repository's first path component (None when there is only one)."""
    repo_key, slash, image = repository.partition("/")
    if not slash or not image:
        return None
    return f"/artifactory/api/docker/{repo_key}/v2/{image}/manifests/{reference}"


def is_artifactory_response(response: httpx.Response) -> bool:
    return any(name in response.headers for name in ARTIFACTORY_HEADERS)


def parse_index(body: bytes) -> tuple[PlatformManifest, ...]:
    """The `manifests` of an OCI index / Docker manifest list; raises BadResponseError when malformed."""
    data = _json_object(body)
    entries = data.get("manifests")
    if not isinstance(entries, list):
        raise BadResponseError("index has no 'manifests' list")
    platforms = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
            raise BadResponseError("index entry without a digest")
        if not is_valid_digest(entry["digest"]):
            # Shown by `digest --platforms` and used as a manifest reference: never taken as written.
            raise BadResponseError("index entry with an invalid digest (expected sha256:<64 hex digits>)")
        raw_platform = entry.get("platform")
        platform: dict[str, Any] = raw_platform if isinstance(raw_platform, dict) else {}
        variant = platform.get("variant")
        platforms.append(
            PlatformManifest(
                digest=entry["digest"],
                media_type=str(entry.get("mediaType", "")),
                os=str(platform.get("os", "unknown")),
                architecture=str(platform.get("architecture", "unknown")),
                variant=str(variant) if variant else None,
            )
        )
    return tuple(platforms)


def verify_manifest(body: bytes, header: str | None, pinned: str | None = None) -> str:
    """The digest of a manifest body, checked against the `Docker-Content-Digest` header (its
    algorithm is used when given) and against the digest asked for; BadResponseError on mismatch."""
    expected = _valid_digest(header) if header is not None else None
    if header is not None and expected is None:
        raise BadResponseError(f"registry sent an invalid Docker-Content-Digest {header[:100]!r}")
    algorithm = expected.split(":", 1)[0] if expected else "sha256"
    computed = f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"
    if expected is not None and computed != expected:
        raise BadResponseError(
            f"manifest body does not match its Docker-Content-Digest ({expected} != {computed})"
        )
    if pinned is not None and pinned.split(":", 1)[0] == algorithm and computed != pinned:
        raise BadResponseError(f"manifest body does not match the requested digest {pinned}")
    return computed


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadResponseError("manifest is not valid JSON") from exc
    if not isinstance(data, dict):
        raise BadResponseError("manifest is not a JSON object")
    return data


def build_ssl_context(ca_paths: Sequence[str]) -> ssl.SSLContext:
    """The system trust store plus each CA file of `tls.caCertificatePaths` (a directory: every
    file in it, as Kubernetes mounts a Secret or ConfigMap)."""
    context = ssl.create_default_context()
    for path in ca_paths:
        if os.path.isdir(path):
            files = sorted(
                os.path.join(path, name)
                for name in os.listdir(path)
                if not name.startswith(".") and os.path.isfile(os.path.join(path, name))
            )
            if not files:
                raise RegistryConfigError(
                    f"CA certificate directory {path} (tls.caCertificatePaths) is empty"
                )
        elif os.path.isfile(path):
            files = [path]
        else:
            raise RegistryConfigError(f"CA certificate file {path} (tls.caCertificatePaths) does not exist")
        for file in files:
            try:
                context.load_verify_locations(cafile=file)
            except (ssl.SSLError, OSError) as exc:
                raise RegistryConfigError(
                    f"CA certificate file {file} (tls.caCertificatePaths) is not a readable PEM "
                    f"certificate: {exc}"
                ) from exc
    return context


def _media_type(response: httpx.Response) -> str:
    content_type: str = response.headers.get("Content-Type", "")
    return content_type.split(";", 1)[0].strip()


def _valid_digest(text: str | None) -> str | None:
    if text is None:
        return None
    digest = text.strip()
    return digest if is_valid_digest(digest) else None


class _PlainHttpPort(Exception):
    """A loopback port answered a TLS handshake with something that is not TLS."""


class RegistryClient:
    """Manifest digest lookups over one HTTP/1.1 client with a connection pool per registry host."""

    def __init__(
        self,
        ca_paths: Sequence[str] = (),
        artifactory_fallback: bool = False,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        lockout_initial: float = 300.0,
        lockout_max: float = 3600.0,
        clock: Clock = time.monotonic,
        on_request: RequestObserver | None = None,
        max_manifest_bytes: int = MAX_MANIFEST_BYTES,
        deadline: float = DEFAULT_DEADLINE,
        connections_per_host: int = DEFAULT_CONNECTIONS_PER_HOST,
    ) -> None:
        self._artifactory_fallback = artifactory_fallback
        self._retry = retry or RetryPolicy()
        self._max_manifest_bytes = max_manifest_bytes
        self._deadline = deadline
        self._on_request = on_request
        self.auth_state = AuthState(clock, lockout_initial, lockout_max)
        #: HTTP requests sent, by (registry host, method, outcome: status code or "error").
        self.requests_total: Counter[tuple[str, str, str]] = Counter()
        self._plain_http: set[str] = set()
        self._artifactory_repo_keys: set[tuple[str, str]] = set()
        # A pool per host: a slow registry holds only its own connections (see registry.pools).
        per_host = max(1, connections_per_host)
        self._http = httpx.AsyncClient(
            transport=HostPools(
                verify=build_ssl_context(ca_paths),
                limits=httpx.Limits(
                    max_connections=per_host,
                    max_keepalive_connections=min(per_host, 8),
                    keepalive_expiry=30.0,
                ),
            ),
            timeout=timeout,
            follow_redirects=True,
            max_redirects=5,
            headers={"User-Agent": f"kube-autorollout/{__version__}"},
            event_hooks={"response": [self._count_response, self._check_redirect]},
        )

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def resolve(
        self, ref: ImageReference, credentials: RegistryCredentials | None, *, platforms: bool = False
    ) -> ManifestDigest:
        """The digest `ref`'s tag points to now (a pinned reference is answered without a request,
        unless `platforms` asks for its index entries); LookupTimeoutError past the deadline."""
        if ref.digest is not None and not platforms:
            return ManifestDigest(digest=ref.digest, media_type="")
        deadline = asyncio.timeout(self._deadline)
        try:
            async with deadline:
                return await self._resolve_retrying(ref, credentials, platforms, deadline)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise LookupTimeoutError(
                f"no answer within {self._deadline:g} s (lookupTimeoutSeconds)",
                registry=ref.registry,
                reference=str(ref),
            ) from None

    async def _resolve_retrying(
        self,
        ref: ImageReference,
        credentials: RegistryCredentials | None,
        platforms: bool,
        deadline: asyncio.Timeout,
    ) -> ManifestDigest:
        loop = asyncio.get_running_loop()
        failed = 0
        while True:
            try:
                return await self._resolve_once(ref, credentials, platforms)
            except RegistryError as exc:
                # Whatever failed, the message leaves the client without these credentials in it.
                exc.message = redact(exc.message, secret_forms(credentials))
                exc.args = (exc.message,)
                if not exc.reference:
                    exc.reference = str(ref)
                if not exc.registry:
                    exc.registry = ref.registry
                failed += 1
                delay = self._retry.delay(failed, exc)
                ends = deadline.when()
                if delay is None or (ends is not None and loop.time() + delay >= ends):
                    raise
                await asyncio.sleep(delay)

    async def _resolve_once(
        self, ref: ImageReference, credentials: RegistryCredentials | None, platforms: bool
    ) -> ManifestDigest:
        host = ref.api_host
        reference = ref.digest or ref.tag_or_latest
        try:
            return await self._lookup(ref, reference, credentials, platforms, self._scheme(host))
        except _PlainHttpPort:
            self._plain_http.add(host)
            return await self._lookup(ref, reference, credentials, platforms, "http")

    def _scheme(self, host: str) -> str:
        return "http" if host in self._plain_http else "https"

    async def _lookup(
        self,
        ref: ImageReference,
        reference: str,
        credentials: RegistryCredentials | None,
        platforms: bool,
        scheme: str,
    ) -> ManifestDigest:
        host = ref.api_host
        base = f"{scheme}://{host}"
        standard = f"{base}/v2/{ref.repository}/manifests/{reference}"
        fallback_path = (
            artifactory_fallback_path(ref.repository, reference) if self._artifactory_fallback else None
        )
        repo_key = ref.repository.split("/", 1)[0]
        if fallback_path is None:
            return await self._fetch(standard, ref, reference, credentials, platforms, may_hint=False)
        if (host, repo_key) in self._artifactory_repo_keys:
            return await self._fetch(
                base + fallback_path, ref, reference, credentials, platforms, may_hint=False
            )

        try:
            return await self._fetch(standard, ref, reference, credentials, platforms, may_hint=True)
        except _ArtifactoryHint:
            # Remembered, so later lookups under this repository key go to the fallback path directly.
            self._artifactory_repo_keys.add((host, repo_key))
            return await self._fetch(
                base + fallback_path, ref, reference, credentials, platforms, may_hint=False
            )

    async def _fetch(
        self,
        url: str,
        ref: ImageReference,
        reference: str,
        credentials: RegistryCredentials | None,
        platforms: bool,
        *,
        may_hint: bool,
    ) -> ManifestDigest:
        if not platforms:
            response, auth = await self._send("HEAD", url, ref, credentials)
            try:
                # Reading the (empty) body completes the exchange, so the connection is kept alive.
                await self._finish_head(response)
                if response.status_code == 200:
                    digest = _valid_digest(response.headers.get("Docker-Content-Digest"))
                    if digest is not None:
                        return ManifestDigest(digest=digest, media_type=_media_type(response))
                elif response.status_code != 405:
                    raise await self._status_error(response, auth, ref, reference, may_hint=may_hint)
            finally:
                await response.aclose()

        response, auth = await self._send("GET", url, ref, credentials)
        try:
            if response.status_code != 200:
                raise await self._status_error(response, auth, ref, reference, may_hint=may_hint)
            body = await read_capped(
                response, self._max_manifest_bytes, what=f"manifest {reference!r} of {ref.repository}"
            )
        finally:
            await response.aclose()
        return self._verified(
            body, response, reference if ref.digest is not None else None, platforms=platforms
        )

    async def _finish_head(self, response: httpx.Response) -> None:
        # Not read_capped: a HEAD's Content-Length is the size of the GET's body, not of its own.
        try:
            await response.aread()
        except httpx.HTTPError as exc:
            peer = response.request.url.netloc.decode("ascii")
            raise transport_error(exc, peer, "the HEAD answer") from exc

    def _verified(
        self, body: bytes, response: httpx.Response, pinned: str | None, *, platforms: bool
    ) -> ManifestDigest:
        digest = verify_manifest(body, response.headers.get("Docker-Content-Digest"), pinned)
        # Every manifest is a JSON object: anything else (an HTML page a proxy answered with 200)
        # must not become a digest, or it would look like a moved tag and roll pods.
        document = _json_object(body)
        media_type = _media_type(response)
        if not media_type or media_type in ("application/json", "application/octet-stream"):
            media_type = str(document.get("mediaType", media_type))
        entries: tuple[PlatformManifest, ...] = ()
        if platforms and media_type in INDEX_MEDIA_TYPES:
            entries = parse_index(body)
        return ManifestDigest(
            digest=digest,
            media_type=media_type,
            platform_digests=tuple(e.digest for e in entries),
            platforms=entries,
        )

    async def _send(
        self, method: str, url: str, ref: ImageReference, credentials: RegistryCredentials | None
    ) -> tuple[httpx.Response, RegistryAuth]:
        request = self._http.build_request(method, url, headers={"Accept": MANIFEST_ACCEPT})
        netloc = request.url.netloc.decode("ascii")
        auth = RegistryAuth(
            self.auth_state,
            credentials,
            registry=netloc,
            scope=repository_scope(ref.repository),
            client=self._http,
        )
        try:
            response = await self._http.send(request, auth=auth, stream=True)
        except httpx.ConnectError as exc:
            error = self._connect_error(exc, request)
            if not isinstance(error, _PlainHttpPort):  # finding a loopback port's scheme is no failure
                self._count(netloc, method, "error")
            raise error from exc
        except httpx.TooManyRedirects as exc:
            raise BadResponseError(f"too many redirects from {url}") from exc
        except httpx.HTTPError as exc:
            self._count(netloc, method, "error")
            raise transport_error(exc, netloc, f"the {method} request") from exc
        return response, auth

    async def _check_redirect(self, response: httpx.Response) -> None:
        """Refuse a redirect before httpx follows it anywhere a lookup must not go."""
        if not response.has_redirect_location:
            return
        source = response.request.url
        target = redirect_target(source, response.headers["Location"])
        if (
            source.scheme == "https"
            and target.scheme == "http"
            and not is_loopback_host(target.netloc.decode("ascii"))
        ):
            raise BadResponseError(f"{source.netloc.decode('ascii')} redirected from https to plain http")

    def _connect_error(self, exc: httpx.ConnectError, request: httpx.Request) -> Exception:
        try:
            hop = exc.request  # after a redirect: the request that failed, to another host maybe
        except RuntimeError:
            hop = request
        netloc = hop.url.netloc.decode("ascii")
        cause = ssl_cause(exc)
        if cause is None:
            return UnreachableError(f"cannot connect to {netloc}: {exc}")
        if isinstance(cause, ssl.SSLCertVerificationError):
            return RegistryTlsError(
                f"TLS certificate of {netloc} not trusted: {cause.verify_message or cause}; "
                "add its CA to tls.caCertificatePaths"
            )
        # Only the registry's own port may turn out to speak plain HTTP, not a redirect's target.
        if hop.url == request.url and request.url.scheme == "https" and is_loopback_host(netloc):
            return _PlainHttpPort()
        return RegistryTlsError(f"TLS handshake with {netloc} failed: {cause}")

    async def _status_error(
        self,
        response: httpx.Response,
        auth: RegistryAuth,
        ref: ImageReference,
        reference: str,
        *,
        may_hint: bool,
    ) -> Exception:
        status = response.status_code
        if status in (400, 404) and may_hint and is_artifactory_response(response):
            return _ArtifactoryHint()
        detail = await self._error_detail(response, auth)
        suffix = f" (HTTP {status}{': ' + detail if detail else ''})"
        registry = ref.registry
        if status == 404:
            return NotFoundError(
                f"manifest {reference!r} not found in repository {ref.repository!r}{suffix}",
                registry=registry,
            )
        if status == 401:
            return UnauthorizedError(self._unauthorized_message(auth) + suffix, registry=registry)
        if status == 403:
            return ForbiddenError(f"pulling {ref.repository!r} is not allowed{suffix}", registry=registry)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return RateLimitedError(f"rate limited{suffix}", registry=registry, retry_after=retry_after)
        if status >= 500:
            return ServerError(f"registry error{suffix}", registry=registry)
        return BadResponseError(f"unexpected answer{suffix}", registry=registry)

    def _unauthorized_message(self, auth: RegistryAuth) -> str:
        if not auth.uses_credentials:
            return "authentication required and no credentials are configured for this registry"
        if auth.sent is Sent.NOTHING:
            return "registry asked for a login the client cannot answer (or redirected to another host)"
        if auth.sent in (Sent.BASIC, Sent.STATIC_BEARER):
            return "registry rejected the credentials; they are not sent again during the backoff"
        return "the token issued does not allow pulling this repository (wrong name or no permission)"

    async def _error_detail(self, response: httpx.Response, auth: RegistryAuth) -> str:
        """The registry's own error code and message from a JSON error body, if any, without the
        credentials of this request (a registry may echo the request back)."""
        if response.request.method == "HEAD":
            return ""
        try:
            body = await read_capped(response, _ERROR_DETAIL_BYTES, what="error body")
            errors = json.loads(body).get("errors")
        except (RegistryError, ValueError, AttributeError, httpx.HTTPError):
            return ""
        if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
            return ""
        code, message = (errors[0].get(name) for name in ("code", "message"))
        text = f"{code if isinstance(code, str) else ''}: {message if isinstance(message, str) else ''}"
        # Redacted before it is cut, so a cut cannot leave the start of a credential in the text.
        return redact(text, auth.secrets_in_use())[:200]

    async def _count_response(self, response: httpx.Response) -> None:
        request = response.request
        self._count(request.url.netloc.decode("ascii"), request.method, str(response.status_code))

    def _count(self, registry: str, method: str, outcome: str) -> None:
        self.requests_total[(registry, method, outcome)] += 1
        if self._on_request is not None:
            self._on_request(registry, method, outcome)


class _ArtifactoryHint(Exception):
    """A 404/400 from an Artifactory server: the repository path method may be in use."""


__all__ = [
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "MANIFEST_ACCEPT",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "ManifestDigest",
    "PlatformManifest",
    "RegistryClient",
    "RetryPolicy",
    "artifactory_fallback_path",
    "build_ssl_context",
    "parse_index",
    "parse_retry_after",
    "verify_manifest",
]
