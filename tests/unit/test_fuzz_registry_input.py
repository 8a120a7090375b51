"""Fuzzing the parsers that read what a registry or a secret hands us: WWW-Authenticate challenges,
token responses, manifests and indexes, Retry-After, dockerconfigjson. Each either returns a value
of the documented shape or raises its boundary's own error; none crashes, and a secret never shows
up in an error message."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autorollout.credentials import CredentialsError, parse_dockerconfigjson
from autorollout.registry.challenges import Challenge, parse_www_authenticate, pick_challenge
from autorollout.registry.errors import BadResponseError
from autorollout.registry.manifests import parse_index, verify_manifest
from autorollout.registry.tokens import parse_token_response
from autorollout.retry_after import parse_retry_after  # the header parser of registry and API errors

pytestmark = pytest.mark.unit

_challenge_pieces = st.sampled_from(
    [
        "Bearer",
        "Basic",
        "Negotiate",
        " ",
        ",",
        "=",
        '"',
        "\\",
        "realm",
        "service",
        "scope",
        "x",
        "https://a/b",
        "\u00e9",
    ]
)
challenge_texts = st.one_of(st.text(max_size=80), st.lists(_challenge_pieces, max_size=30).map("".join))


@settings(max_examples=100)
@given(challenge_texts)
def test_any_www_authenticate_parses_to_challenges(header: str) -> None:
    challenges = parse_www_authenticate(header)
    assert all(isinstance(c, Challenge) and c.scheme == c.scheme.lower() for c in challenges)
    picked = pick_challenge(challenges)
    assert picked is None or picked.scheme in ("bearer", "basic")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=16,
)
json_or_bytes = st.one_of(
    st.binary(max_size=256),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["token", "access_token", "expires_in", "manifests", "mediaType"]),
        json_values,
        max_size=4,
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=100)
@given(json_or_bytes)
def test_token_responses_give_a_token_or_a_bad_response(body: bytes) -> None:
    try:
        token, expires_in = parse_token_response(body, realm="https://auth.example/token", registry="r")
    except BadResponseError:
        return
    assert isinstance(token, str)
    assert token
    assert expires_in >= 0


@settings(max_examples=100)
@given(json_or_bytes)
def test_index_bodies_give_entries_or_a_bad_response(body: bytes) -> None:
    try:
        entries = parse_index(body)
    except BadResponseError:
        return
    assert all(e.digest and "/" in e.platform for e in entries)


@settings(max_examples=100)
@given(st.binary(max_size=512), st.one_of(st.none(), st.text(max_size=80)))
def test_manifest_verification_never_accepts_a_mismatch(body: bytes, header: str | None) -> None:
    try:
        digest = verify_manifest(body, header)
    except BadResponseError:
        return
    algorithm = digest.split(":", 1)[0]
    assert digest == f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


retry_after_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["\u00b2", "1\u00b2", "inf", "nan", "-1", "1e400", "Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 99"]
    ),
)


@given(retry_after_values)
def test_retry_after_is_seconds_or_none(value: str) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or 0 <= seconds < float("inf")


SECRET = "s3cr3t-Pa55word-Zq9"


@settings(max_examples=100)
@given(
    st.one_of(
        json_values.map(lambda v: json.dumps({"auths": {"reg.example": v}})),
        json_values.map(lambda v: json.dumps({"auths": v})),
        st.text(max_size=60).map(lambda t: json.dumps({"auths": {"r": {"auth": t, "password": SECRET}}})),
        st.binary(max_size=60).map(
            lambda b: json.dumps({"auths": {"r": {"auth": base64.b64encode(b + SECRET.encode()).decode()}}})
        ),
        st.text(max_size=80).map(lambda t: t + SECRET),
    )
)
def test_dockerconfigjson_parses_or_fails_without_the_secret(data: str) -> None:
    try:
        found = parse_dockerconfigjson(data)
    except CredentialsError as exc:
        message = str(exc) + " ".join(exc.problems)
        assert SECRET not in message
        assert base64.b64encode(SECRET.encode()).decode()[:12] not in message
        return
    for host, credentials in found.items():
        assert host == host.lower()
        assert SECRET not in repr(credentials)
