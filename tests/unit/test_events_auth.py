"""Event authentication: shared tokens (header or query), GitHub's HMAC signature, unauthenticated
sources; reasons are one line and never contain the secret or what was presented."""

from __future__ import annotations

import pytest

from autorollout.events.auth import Scheme, SourceAuth, github_signature, token_matches

pytestmark = pytest.mark.unit

SECRET = b"s3cr3t-token-value"
BODY = b'{"action":"published"}'


def token_auth(*, query: bool = False, header: str = "authorization") -> SourceAuth:
    return SourceAuth(Scheme.TOKEN, header, query, SECRET)


def test_a_token_matches_bare_or_after_a_bearer_or_token_scheme() -> None:
    assert token_matches(SECRET, "s3cr3t-token-value")
    assert token_matches(SECRET, "Bearer s3cr3t-token-value")
    assert token_matches(SECRET, "bearer s3cr3t-token-value")
    assert token_matches(SECRET, "Token s3cr3t-token-value")
    assert not token_matches(SECRET, "Basic s3cr3t-token-value")
    assert not token_matches(SECRET, "s3cr3t-token-valu")
    assert not token_matches(SECRET, "")
    assert not token_matches(SECRET, "s3cr3t-token-value\udcff")  # undecodable bytes, as a header may hold


def test_token_in_its_header_or_in_the_query_only_where_the_source_cannot_set_headers() -> None:
    assert token_auth().problem({"authorization": "Bearer s3cr3t-token-value"}, {}, BODY) is None
    assert token_auth().problem({}, {"token": "s3cr3t-token-value"}, BODY) == (
        "no credential: expected the authorization header"
    )
    assert token_auth(query=True).problem({}, {"token": "s3cr3t-token-value"}, BODY) is None
    assert (
        token_auth(header="x-jfrog-event-auth").problem(
            {"x-jfrog-event-auth": "s3cr3t-token-value"}, {}, BODY
        )
        is None
    )


def test_a_wrong_token_is_refused_without_echoing_anything() -> None:
    problem = token_auth(query=True).problem({"authorization": "Bearer guess-s3cr3t"}, {}, BODY)
    assert problem == "wrong credential"


def test_github_signature_over_the_exact_body() -> None:
    auth = SourceAuth(Scheme.HMAC_SHA256, "x-hub-signature-256", False, SECRET)
    good = github_signature(SECRET, BODY)
    assert good.startswith("sha256=")
    assert len(good) == 7 + 64
    assert auth.problem({"x-hub-signature-256": good}, {}, BODY) is None
    assert auth.problem({"x-hub-signature-256": good.upper().replace("SHA256=", "sha256=")}, {}, BODY) is None
    assert auth.problem({"x-hub-signature-256": good}, {}, BODY + b" ") == "signature does not match the body"
    tampered = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert auth.problem({"x-hub-signature-256": tampered}, {}, BODY) == "signature does not match the body"
    assert (
        auth.problem({"x-hub-signature-256": "sha1=" + "0" * 40}, {}, BODY)
        == "signature does not match the body"
    )
    assert auth.problem({}, {}, BODY) == "no signature: expected the X-Hub-Signature-256 header"
    # A token in a header is no signature.
    assert auth.problem({"authorization": "Bearer s3cr3t-token-value"}, {}, BODY) is not None


def test_an_unauthenticated_source_lets_everything_through() -> None:
    assert SourceAuth(Scheme.TOKEN, "authorization", False, None).problem({}, {}, BODY) is None
