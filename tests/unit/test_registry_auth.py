"""Pure parts of registry auth: WWW-Authenticate parsing, token responses, token cache, lockout."""

from __future__ import annotations

import pytest

from autorollout.registry.auth import CredentialLockout
from autorollout.registry.challenges import Challenge, parse_www_authenticate, pick_challenge
from autorollout.registry.errors import BadResponseError
from autorollout.registry.tokens import MAX_TOKEN_LIFETIME, TokenCache, parse_token_response, token_lifetime
from autorollout.registry.wire import is_loopback_host

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_docker_hub_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull"'
    )
    assert parse_www_authenticate(header) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/nginx:pull",
            },
        )
    ]


def test_scope_with_commas_and_error_param() -> None:
    header = (
        'Bearer realm="https://ghcr.io/token", service="ghcr.io", '
        'scope="repository:o/r:pull,push", error="insufficient_scope"'
    )
    [challenge] = parse_www_authenticate(header)
    assert challenge.params["scope"] == "repository:o/r:pull,push"
    assert challenge.params["error"] == "insufficient_scope"


def test_basic_and_several_challenges() -> None:
    challenges = parse_www_authenticate('Basic realm="Registry Realm", Bearer realm="https://x/t",service=x')
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].realm == "Registry Realm"
    assert challenges[1].params == {"realm": "https://x/t", "service": "x"}
    assert pick_challenge(challenges) == challenges[1]


def test_escaped_quotes_unquoted_values_and_case() -> None:
    [challenge] = parse_www_authenticate(r'BEARER Realm="a \"quoted\" realm" , Service=plain')
    assert challenge.scheme == "bearer"
    assert challenge.params == {"realm": 'a "quoted" realm', "service": "plain"}


@pytest.mark.parametrize("header", ["", "   ", ",,,", "Negotiate", 'Bearer realm="unterminated'])
def test_odd_headers_do_not_crash(header: str) -> None:
    challenges = parse_www_authenticate(header)
    assert pick_challenge(challenges) is None or pick_challenge(challenges) in challenges


def test_pick_prefers_bearer_and_ignores_unknown_schemes() -> None:
    assert pick_challenge([Challenge("negotiate"), Challenge("basic")]) == Challenge("basic")
    assert pick_challenge([Challenge("negotiate")]) is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.8.9.10", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("registry.localhost:80", True),
        ("10.0.0.1:5000", False),
        ("ghcr.io", False),
        ("[fe80::1]:443", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("expires_in", "seconds"),
    [
        ("9" * 400, MAX_TOKEN_LIFETIME),  # an int float() cannot hold: OverflowError before the fix
        ("-" + "9" * 400, 60.0),
        ("1e400", MAX_TOKEN_LIFETIME),  # JSON reads it as inf
        ("Infinity", MAX_TOKEN_LIFETIME),
        ("-Infinity", 60.0),
        ("NaN", 60.0),
        ("-5", 60.0),
        ("0", 60.0),
        ("true", 60.0),
        ('"300"', 60.0),
        ("null", 60.0),
        ("[300]", 60.0),
        ("0.5", 0.5),
        ("300", 300.0),
        ("3600", MAX_TOKEN_LIFETIME),
        ("86400", MAX_TOKEN_LIFETIME),
    ],
)
def test_odd_expires_in_is_clamped_or_defaulted(expires_in: str, seconds: float) -> None:
    body = f'{{"token": "t", "expires_in": {expires_in}}}'.encode()
    assert parse_token_response(body) == ("t", seconds)


def test_token_lifetime_of_python_values() -> None:
    assert token_lifetime(10**400) == MAX_TOKEN_LIFETIME
    assert token_lifetime(float("nan")) == 60.0
    assert token_lifetime(None) == 60.0
    assert token_lifetime(False) == 60.0
    assert token_lifetime(120) == 120.0


def test_an_int_too_long_for_python_is_a_bad_response() -> None:
    with pytest.raises(BadResponseError, match="not JSON"):
        parse_token_response(b'{"token": "t", "expires_in": ' + b"9" * 5000 + b"}")


def test_token_response_variants() -> None:
    assert parse_token_response(b'{"token": "t1", "expires_in": 300}') == ("t1", 300.0)
    assert parse_token_response(b'{"access_token": "t2"}') == ("t2", 60.0)
    assert parse_token_response(b'{"token": "t3", "expires_in": "soon"}') == ("t3", 60.0)
    assert parse_token_response(b'{"token": "t4", "expires_in": true}') == ("t4", 60.0)
    for body in (b"not json", b"[]", b'{"token": ""}', b'{"expires_in": 3}'):
        with pytest.raises(BadResponseError):
            parse_token_response(body, realm="https://auth/token")


def test_token_cache_expires_with_margin() -> None:
    clock = Clock()
    cache = TokenCache(clock)
    key = ("https://auth/token", "svc", "repository:a:pull", "fp")
    cache.put(key, "secret-token", 60)
    clock.now += 54
    assert cache.get(key) == "secret-token"
    clock.now += 1.5  # within the 5 s margin before expires_in
    assert cache.get(key) is None
    assert len(cache) == 0


def test_token_cache_keys_by_credentials_and_scope() -> None:
    cache = TokenCache(Clock())
    cache.put(("r", "s", "repository:a:pull", "fp1"), "one", 300)
    assert cache.get(("r", "s", "repository:a:pull", "fp2")) is None
    assert cache.get(("r", "s", "repository:b:pull", "fp1")) is None
    assert cache.get(("r", "s", "repository:a:pull", "fp1")) == "one"


def test_token_values_do_not_show_in_repr() -> None:
    cache = TokenCache(Clock())
    cache.put(("r", "s", "scope", "fp"), "very-secret-token", 300)
    assert "very-secret-token" not in repr(cache._tokens)


def test_lockout_doubles_up_to_an_hour_and_resets_on_success() -> None:
    clock = Clock()
    lockout = CredentialLockout(clock)
    assert lockout.remaining("reg", "fp") == 0
    assert lockout.record_failure("reg", "fp") == 300
    assert lockout.remaining("reg", "fp") == 300
    assert lockout.remaining("other-reg", "fp") == 0
    assert lockout.remaining("reg", "other-fp") == 0
    clock.now += 300
    assert lockout.remaining("reg", "fp") == 0
    periods = [lockout.record_failure("reg", "fp") for _ in range(6)]
    assert periods == [600, 1200, 2400, 3600, 3600, 3600]
    lockout.record_success("reg", "fp")
    assert lockout.remaining("reg", "fp") == 0
    assert lockout.record_failure("reg", "fp") == 300
