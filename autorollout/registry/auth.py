"""Registry authentication as one httpx auth flow: anonymous -> 401 challenge -> Basic or Bearer token.

`RegistryAuth` is created per request; the state it learns (each registry's challenge, bearer tokens
until `expires_in` runs out, credentials currently locked out after a rejection) lives in a shared
`AuthState`, so steady-state lookups send one request with the right `Authorization` header up front.

Credential lockout: self-hosted registries lock an account after a few failed logins, so once a
registry or its token service rejects a credential (401/403 to Basic credentials, to an Opaque bearer
token, or to the login at the token service), that credential is not sent to that registry again for a
backoff period (5 min, doubling up to 1 h, reset by a success). A 401/403 to a token the token service
issued a moment ago is a permission (scope) answer, not a failed login, and does not lock.
Anonymous lookups are never locked.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, NoReturn

import httpx

from autorollout.credentials import normalize_secret
from autorollout.registry.authorization import (
    basic_authorization,
    bearer_authorization,
    secret_forms,
    source_of,
)
from autorollout.registry.challenges import Challenge, parse_www_authenticate, pick_challenge
from autorollout.registry.errors import (
    BadResponseError,
    CredentialBackoffError,
    ForbiddenError,
    RegistryError,
    RegistryTlsError,
    ServerError,
    UnauthorizedError,
)
from autorollout.registry.tokens import (
    MAX_TOKEN_RESPONSE_BYTES,
    Clock,
    TokenCache,
    TokenKey,
    parse_token_response,
)
from autorollout.registry.wire import is_loopback_host, read_capped, ssl_cause, transport_error, url_problem

if TYPE_CHECKING:
    from autorollout.credentials import RegistryCredentials


ANONYMOUS = "anonymous"
LOCKOUT_INITIAL = 300.0
LOCKOUT_MAX = 3600.0


@dataclass(slots=True)
class _Lock:
    failures: int
    until: float


class CredentialLockout:
    """Credentials a registry rejected recently: not sent there again until the backoff passes."""

    def __init__(
        self, clock: Clock = time.monotonic, initial: float = LOCKOUT_INITIAL, maximum: float = LOCKOUT_MAX
    ) -> None:
        self._clock = clock
        self._initial = initial
        self._maximum = maximum
        self._locks: dict[tuple[str, str], _Lock] = {}

    def remaining(self, registry: str, fingerprint: str) -> float:
        """Seconds this credential stays locked for this registry (0 when usable)."""
        lock = self._locks.get((registry, fingerprint))
        return 0.0 if lock is None else max(0.0, lock.until - self._clock())

    def record_failure(self, registry: str, fingerprint: str) -> float:
        """Lock the credential; each failure in a row doubles the period. Returns the period."""
        previous = self._locks.get((registry, fingerprint))
        failures = 1 if previous is None else previous.failures + 1
        period = min(self._maximum, self._initial * 2.0 ** min(failures - 1, 30))
        self._locks[(registry, fingerprint)] = _Lock(failures, self._clock() + period)
        return period

    def record_success(self, registry: str, fingerprint: str) -> None:
        self._locks.pop((registry, fingerprint), None)


class AuthState:
    """What the auth flow learns and shares across requests of one client."""

    def __init__(
        self,
        clock: Clock = time.monotonic,
        lockout_initial: float = LOCKOUT_INITIAL,
        lockout_max: float = LOCKOUT_MAX,
    ) -> None:
        self.tokens = TokenCache(clock)
        self.lockout = CredentialLockout(clock, lockout_initial, lockout_max)
        # Last challenge seen per registry netloc (host:port), used to authenticate up front.
        self.challenges: dict[str, Challenge] = {}
        # Token fetches made (realm requests answered 200), for tests and metrics.
        self.tokens_fetched = 0


class Sent(Enum):
    """What the last request of the flow carried, which decides what a 401/403 means."""

    NOTHING = "anonymous"
    BASIC = "basic"
    STATIC_BEARER = "static bearer token"
    FETCHED_TOKEN = "fetched token"  # noqa: S105
    CACHED_TOKEN = "cached token"  # noqa: S105


def _fingerprint(credentials: RegistryCredentials | None) -> str:
    return ANONYMOUS if credentials is None else credentials.fingerprint()


def _has_login(credentials: RegistryCredentials | None) -> bool:
    return credentials is not None and credentials.username is not None and credentials.password is not None


class RegistryAuth(httpx.Auth):
    """The auth flow for one registry request; `registry` is the netloc the request goes to.

    Token requests go through `client` directly (not yielded to httpx) so their bodies can be read
    with a size cap; the registry request itself is sent at most twice (up front, then answering a
    challenge once).
    """

    def __init__(
        self,
        state: AuthState,
        credentials: RegistryCredentials | None,
        *,
        registry: str,
        scope: str,
        client: httpx.AsyncClient,
    ) -> None:
        self._state = state
        self._credentials = credentials
        self._registry = registry
        self._scope = scope
        self._client = client
        self._fingerprint = _fingerprint(credentials)
        self.sent = Sent.NOTHING
        self._authorizations: list[str] = []

    def secrets_in_use(self) -> set[str]:
        """The credentials and every Authorization value this flow sent, in each quotable form."""
        return secret_forms(self._credentials, self._authorizations)

    def _authorization(self, value: str) -> str:
        self._authorizations.append(value)
        return value

    @property
    def uses_credentials(self) -> bool:
        return self._credentials is not None and (
            _has_login(self._credentials) or self._credentials.token is not None
        )

    def check_lockout(self) -> None:
        """Raise CredentialBackoffError (sending nothing) while these credentials are locked out."""
        if not self.uses_credentials:
            return
        remaining = self._state.lockout.remaining(self._registry, self._fingerprint)
        if remaining > 0:
            raise CredentialBackoffError(
                f"credentials were rejected by {self._registry} recently; not sent again for "
                f"{remaining:.0f}s (fix the secret, or wait)",
                registry=self._registry,
                retry_in=remaining,
            )

    def sync_auth_flow(self, request: httpx.Request) -> NoReturn:
        raise TypeError("RegistryAuth works with httpx.AsyncClient only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        self.check_lockout()
        credentials = self._credentials
        if credentials is not None and credentials.token is not None and not _has_login(credentials):
            # An Opaque secret: an identity/API token that the registry takes as a bearer token directly.
            header = bearer_authorization(credentials.token, source=f"of {source_of(credentials)}")
            request.headers["Authorization"] = self._authorization(header)
            self.sent = Sent.STATIC_BEARER
            response = yield request
            self._after_final(response)
            return

        known = self._state.challenges.get(self._registry)
        if known is not None:
            await self._authorize(request, known, self._scope, up_front=True)
        response = yield request

        if response.status_code == 401 and self._same_origin(response):
            challenge = pick_challenge(parse_www_authenticate(response.headers.get("WWW-Authenticate", "")))
            if challenge is not None and self._should_answer(challenge):
                self._state.challenges[self._registry] = challenge
                scope = challenge.params.get("scope") or self._scope
                if await self._authorize(request, challenge, scope, up_front=False):
                    response = yield request
        self._after_final(response)

    def _same_origin(self, response: httpx.Response) -> bool:
        # After a redirect the 401 may come from another host: never answer it with our credentials.
        return response.request.url.netloc.decode("ascii") == self._registry

    def _should_answer(self, challenge: Challenge) -> bool:
        if self.sent is Sent.NOTHING:
            return challenge.scheme == "bearer" or _has_login(self._credentials)
        # A token sent up front may have been revoked early or lack the scope the registry asks
        # for: fetch one for the challenge's scope, once.
        return self.sent in (Sent.CACHED_TOKEN, Sent.FETCHED_TOKEN) and challenge.scheme == "bearer"

    async def _authorize(
        self, request: httpx.Request, challenge: Challenge, scope: str, *, up_front: bool
    ) -> bool:
        """Set the request's Authorization for this challenge (fetching a token if needed).
        Returns False when there is nothing to send."""
        if challenge.scheme == "basic":
            if not _has_login(self._credentials):
                return False
            assert self._credentials is not None
            request.headers["Authorization"] = self._authorization(basic_authorization(self._credentials))
            self.sent = Sent.BASIC
            return True
        if challenge.scheme != "bearer":
            return False
        key = self._token_key(challenge, scope)
        if key is None:
            return False
        stale = None if up_front else request.headers.get("Authorization")
        async with self._state.tokens.lock(key):
            token = self._state.tokens.get(key)
            if token is not None and stale == f"Bearer {token}":
                self._state.tokens.discard(key)
                token = None
            if token is not None:
                self.sent = Sent.CACHED_TOKEN
            else:
                token, expires_in = await self._fetch_token(challenge, scope)
                # Checked before it is cached, so a token that cannot be sent is never kept.
                token = normalize_secret(token) or ""
                bearer_authorization(token, source=f"issued by the token service {challenge.realm}")
                self._state.tokens.put(key, token, expires_in)
                if scope != self._scope:
                    # Also file it under the scope asked for up front next time.
                    alias = self._token_key(challenge, self._scope)
                    if alias is not None:
                        self._state.tokens.put(alias, token, expires_in)
                self.sent = Sent.FETCHED_TOKEN
        request.headers["Authorization"] = self._authorization(f"Bearer {token}")
        return True

    def _token_key(self, challenge: Challenge, scope: str) -> TokenKey | None:
        realm = challenge.realm
        if not realm:
            return None
        return (realm, challenge.params.get("service", ""), scope, self._fingerprint)

    def _token_request(self, challenge: Challenge, scope: str) -> httpx.Request:
        realm = challenge.realm or ""
        try:
            url = httpx.URL(realm)
        except httpx.InvalidURL as exc:
            raise BadResponseError(f"token realm {realm!r} is not a URL", registry=self._registry) from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise BadResponseError(f"token realm {realm!r} is not an http(s) URL", registry=self._registry)
        params: dict[str, str] = {"scope": scope}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        headers = {"Accept": "application/json"}
        if _has_login(self._credentials):
            assert self._credentials is not None
            if url.scheme == "http" and not is_loopback_host(url.netloc.decode("ascii")):
                raise UnauthorizedError(
                    f"token realm {realm} is plain HTTP: credentials are not sent over it",
                    registry=self._registry,
                )
            headers["Authorization"] = self._authorization(basic_authorization(self._credentials))
        return httpx.Request("GET", url.copy_merge_params(params), headers=headers)

    async def _fetch_token(self, challenge: Challenge, scope: str) -> tuple[str, float]:
        request = self._token_request(challenge, scope)
        realm = str(request.url.copy_with(query=None))
        problem = url_problem(request.url)
        if problem is not None:
            raise BadResponseError(f"token realm {realm} is not usable: {problem}", registry=self._registry)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            if isinstance(exc, httpx.ConnectError) and ssl_cause(exc) is not None:
                message = f"TLS handshake with token service {realm} failed: {ssl_cause(exc)}"
                raise RegistryTlsError(message, registry=self._registry) from exc
            peer = f"token service {realm}"
            raise transport_error(exc, peer, "the token request", registry=self._registry) from exc
        try:
            status = response.status_code
            if status in (401, 403):
                if _has_login(self._credentials):
                    period = self._state.lockout.record_failure(self._registry, self._fingerprint)
                    message = (
                        f"token service {realm} rejected the credentials (HTTP {status}); "
                        f"they are not sent to {self._registry} again for {period:.0f}s"
                    )
                else:
                    message = (
                        f"token service {realm} refused an anonymous token (HTTP {status}); "
                        "credentials needed"
                    )
                error = UnauthorizedError if status == 401 else ForbiddenError
                raise error(message, registry=self._registry)
            if status >= 500:
                raise ServerError(f"token service {realm} answered HTTP {status}", registry=self._registry)
            if status != 200:
                raise BadResponseError(
                    f"token service {realm} answered HTTP {status}", registry=self._registry
                )
            body = await read_capped(response, MAX_TOKEN_RESPONSE_BYTES, what=f"token response from {realm}")
        finally:
            await response.aclose()
        self._state.tokens_fetched += 1
        return parse_token_response(body, realm=realm, registry=self._registry)

    def _after_final(self, response: httpx.Response) -> None:
        if not self.uses_credentials:
            return
        status = response.status_code
        if status in (401, 403):
            if self.sent in (Sent.BASIC, Sent.STATIC_BEARER) and self._same_origin(response):
                self._state.lockout.record_failure(self._registry, self._fingerprint)
        elif status < 400 or status == 404:
            self._state.lockout.record_success(self._registry, self._fingerprint)


__all__ = [
    "AuthState",
    "CredentialLockout",
    "RegistryAuth",
    "RegistryError",
]
