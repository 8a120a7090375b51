"""Pure parts of what comes off the wire: URLs a peer hands us, transport errors as RegistryErrors."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autorollout.registry.errors import BadResponseError, RegistryError, UnreachableError
from autorollout.registry.wire import redirect_target, transport_error, url_problem

pytestmark = pytest.mark.unit

SOURCE = httpx.URL("https://registry.example:5000/v2/team/app/manifests/v1")


@pytest.mark.parametrize(
    ("location", "target"),
    [
        ("https://cdn.example/m/1", "https://cdn.example/m/1"),
        ("/v2/team/app/manifests/v2", "https://registry.example:5000/v2/team/app/manifests/v2"),
        ("v2", "https://registry.example:5000/v2/team/app/manifests/v2"),
        ("//mirror.example:65535/x", "https://mirror.example:65535/x"),
        ("http://[::1]:5000/x", "http://[::1]:5000/x"),
        ("http://127.0.0.1:1/x", "http://127.0.0.1:1/x"),
        ("https://cdn.example./m", "https://cdn.example./m"),
        ("https://xn--9ca.example/m", "https://xn--9ca.example/m"),
    ],
)
def test_usable_locations_are_followed(location: str, target: str) -> None:
    assert str(redirect_target(SOURCE, location)) == target


@pytest.mark.parametrize(
    ("location", "problem"),
    [
        ("data:text/plain,hello", "not an http(s) URL"),
        ("data:application/json;base64,e30=", "not an http(s) URL"),
        ("file:///etc/passwd", "not an http(s) URL"),
        ("ftp://127.0.0.1/x", "not an http(s) URL"),
        ("javascript:alert(1)", "not an http(s) URL"),
        ("http://127.0.0.1:99999/x", "port 99999 is not in 1-65535"),
        ("http://127.0.0.1:65536/x", "port 65536 is not in 1-65535"),
        ("https://[::1]:70000/x", "port 70000 is not in 1-65535"),
        ("http://127.0.0.1:0/x", "port 0 is not in 1-65535"),
        ("http:///x", "no host"),
        ("//:5/x", "no host"),
        ("http://exa mple/x", "not a host name"),
        ("http://%zz/", "not a host name"),
        ("http://[::1/x", "not a URL"),
        ("\x01garbage", "not a URL"),
        ("https://127.0.0.1:abc/x", "not a URL"),
    ],
)
def test_unusable_locations_are_bad_responses(location: str, problem: str) -> None:
    with pytest.raises(BadResponseError, match="redirected to") as info:
        redirect_target(SOURCE, location)
    assert problem in str(info.value)
    # The peer's text is never quoted back.
    assert location.strip("/") not in str(info.value) or not location.strip("/")


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=60),
        st.tuples(
            st.sampled_from(["http://", "https://", "data:", "//", "/", "", "HTTP://", "ws://"]),
            st.text("ab.-_:[]%@0123456789 \x00é", max_size=20),
            st.sampled_from(["", "/x", ":", ":99999", ":0", ":65535", "?q#f"]),
        ).map("".join),
    )
)
def test_any_location_is_a_connectable_url_or_a_bad_response(location: str) -> None:
    try:
        url = redirect_target(SOURCE, location)
    except BadResponseError:
        return
    assert url_problem(url) is None
    assert url.scheme in ("http", "https")
    assert url.port is None or 1 <= url.port <= 65535


PEER = "127.0.0.1:5000"


@pytest.mark.parametrize(
    ("exc", "kind", "retryable"),
    [
        (httpx.ReadTimeout("timed out"), UnreachableError, True),
        (httpx.ConnectTimeout("timed out"), UnreachableError, True),
        (httpx.ReadError("[Errno 104] Connection reset by peer"), UnreachableError, True),
        (httpx.WriteError("broken pipe"), UnreachableError, True),
        (
            httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
            UnreachableError,
            True,
        ),
        (httpx.RemoteProtocolError("Server disconnected without sending a response"), UnreachableError, True),
        (httpx.UnsupportedProtocol("unsupported protocol"), BadResponseError, False),
        (httpx.DecodingError("Error -3 while decompressing data"), BadResponseError, False),
        (httpx.TooManyRedirects("Exceeded maximum allowed redirects."), BadResponseError, False),
        (httpx.LocalProtocolError("Illegal header value b'Bearer s3cret\\n'"), RegistryError, False),
    ],
)
def test_transport_errors_are_typed(exc: httpx.HTTPError, kind: type[RegistryError], retryable: bool) -> None:
    error = transport_error(exc, PEER, "the manifest 'v1' of team/app", registry=PEER)
    assert type(error) is kind
    assert error.retryable is retryable
    assert error.registry == PEER
    assert PEER in str(error)
    assert type(exc).__name__ in str(error)


def test_what_the_peer_sent_is_never_quoted() -> None:
    echoed = "illegal status line: bytearray(b'GET /v2/ HTTP/1.1 Authorization: Bearer s3cret\\x1b[2J')"
    error = transport_error(httpx.RemoteProtocolError(echoed), PEER, "the GET request")
    assert "s3cret" not in str(error)
    assert "illegal status line" in str(error)
    own = transport_error(httpx.LocalProtocolError("Illegal header value b'Bearer s3cret\\n'"), PEER, "x")
    assert "s3cret" not in str(own)
