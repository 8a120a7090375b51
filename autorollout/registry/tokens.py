"""Bearer tokens of registry token services: the answer parsed (`token` or `access_token`, and how
long it may be kept), and the cache that holds each token until shortly before it expires."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from autorollout.registry.errors import BadResponseError

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "MAX_TOKEN_LIFETIME",
    "MAX_TOKEN_RESPONSE_BYTES",
    "TokenCache",
    "TokenKey",
    "parse_token_response",
    "token_lifetime",
]

Clock = Callable[[], float]

DEFAULT_TOKEN_LIFETIME = 60.0
# A token is re-fetched at least this often, whatever lifetime its service claims (1e400, 10**400).
MAX_TOKEN_LIFETIME = 3600.0
# Renew a token a little before the registry would reject it (clock skew, request time).
TOKEN_MARGIN = 5.0
MAX_TOKEN_RESPONSE_BYTES = 256 * 1024
_MAX_TOKENS = 4096


@dataclass(frozen=True, slots=True)
class _Token:
    value: str = field(repr=False)
    expires_at: float


TokenKey = tuple[str, str, str, str]  # (realm, service, scope, credential fingerprint)


class TokenCache:
    """Bearer tokens by (realm, service, scope, credential fingerprint) until they expire."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[TokenKey, _Token] = {}
        self._locks: dict[TokenKey, asyncio.Lock] = {}

    def get(self, key: TokenKey) -> str | None:
        token = self._tokens.get(key)
        if token is None:
            return None
        if token.expires_at <= self._clock():
            del self._tokens[key]
            return None
        return token.value

    def put(self, key: TokenKey, value: str, expires_in: float) -> None:
        lifetime = max(0.0, expires_in - min(TOKEN_MARGIN, expires_in / 10))
        if len(self._tokens) >= _MAX_TOKENS:
            self._prune()
        self._tokens[key] = _Token(value, self._clock() + lifetime)

    def discard(self, key: TokenKey) -> None:
        self._tokens.pop(key, None)

    def lock(self, key: TokenKey) -> asyncio.Lock:
        """One lock per key so concurrent lookups of one scope fetch one token, not many."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def __len__(self) -> int:
        return len(self._tokens)

    def _prune(self) -> None:
        now = self._clock()
        for key in [k for k, t in self._tokens.items() if t.expires_at <= now]:
            del self._tokens[key]
        while len(self._tokens) >= _MAX_TOKENS:
            del self._tokens[next(iter(self._tokens))]
        for key in [k for k, lock in self._locks.items() if not lock.locked() and k not in self._tokens]:
            del self._locks[key]


def parse_token_response(body: bytes, *, realm: str = "", registry: str = "") -> tuple[str, float]:
    """(token, expires_in seconds) from a token service's JSON answer (`token` or `access_token`)."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadResponseError(f"token response from {realm} is not JSON", registry=registry) from exc
    if not isinstance(data, dict):
        raise BadResponseError(f"token response from {realm} is not a JSON object", registry=registry)
    token = data.get("token") or data.get("access_token")
    if not isinstance(token, str) or not token:
        raise BadResponseError(f"token response from {realm} has no token", registry=registry)
    return token, token_lifetime(data.get("expires_in"))


def token_lifetime(expires_in: object) -> float:
    """Seconds a token may be cached for its `expires_in`: absent, not a number, zero, negative or
    NaN mean the spec's default of 60; more than MAX_TOKEN_LIFETIME (also an integer too large
    for a float) is clamped to it."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        return DEFAULT_TOKEN_LIFETIME
    if (isinstance(expires_in, float) and math.isnan(expires_in)) or expires_in <= 0:
        return DEFAULT_TOKEN_LIFETIME
    # int vs float comparison is exact in Python, so 10**400 is compared, never converted.
    return MAX_TOKEN_LIFETIME if expires_in >= MAX_TOKEN_LIFETIME else float(expires_in)
