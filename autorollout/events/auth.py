"""Who may send an event: a shared token in a header (or, for senders that cannot set one, the
URL's `token` query parameter), or GitHub's HMAC-SHA256 body signature. Pure; every comparison is
constant-time, and no message says anything about the secret or what was presented."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

_SCHEMES = ("bearer ", "token ")
GITHUB_SIGNATURE = "x-hub-signature-256"


class Scheme(StrEnum):
    TOKEN = "token"  # noqa: S105 - the name of a scheme, not a credential
    HMAC_SHA256 = "hmac-sha256"


@dataclass(frozen=True, slots=True)
class SourceAuth:
    """How one source proves itself: `scheme`, the header it uses, whether `?token=` counts, the secret
    (None: unauthenticated, allowed explicitly)."""

    scheme: Scheme
    header: str
    query_token: bool
    secret: bytes | None

    def problem(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> str | None:
        """None when the request is authentic, else a one-line reason (which names no value)."""
        if self.secret is None:
            return None
        if self.scheme is Scheme.HMAC_SHA256:
            return _signature_problem(self.secret, body, headers.get(self.header))
        presented = headers.get(self.header)
        if presented is None and self.query_token:
            presented = query.get("token")
        if presented is None:
            where = f"{self.header} header" + (" or token query parameter" if self.query_token else "")
            return f"no credential: expected the {where}"
        if not token_matches(self.secret, presented):
            return "wrong credential"
        return None


def token_matches(secret: bytes, presented: str) -> bool:
    """Whether `presented` is the secret, bare or after "Bearer "/"Token " (constant-time)."""
    lowered = presented[:7].lower()
    for scheme in _SCHEMES:
        if lowered.startswith(scheme):
            presented = presented[len(scheme) :]
            break
    return hmac.compare_digest(presented.strip().encode("utf-8", "surrogateescape"), secret)


def github_signature(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _signature_problem(secret: bytes, body: bytes, presented: str | None) -> str | None:
    if presented is None:
        return "no signature: expected the X-Hub-Signature-256 header"
    expected = github_signature(secret, body).encode()
    if not hmac.compare_digest(presented.strip().lower().encode("utf-8", "surrogateescape"), expected):
        return "signature does not match the body"
    return None
