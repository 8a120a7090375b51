"""certs/names.py: DNS names for a serving certificate, validated, non-ASCII names IDNA-encoded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certs.names import InvalidDnsName, dns_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("localhost", "localhost"),
        ("kube-autorollout-webhook.tools.svc", "kube-autorollout-webhook.tools.svc"),
        ("Webhook.Tools.SVC", "Webhook.Tools.SVC"),
        ("123.example", "123.example"),
        ("*.tools.svc", "*.tools.svc"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("*.bücher.example", "*.xn--bcher-kva.example"),
        ("ß.de", "xn--zca.de"),
        (
            ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61]),
            ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61]),
        ),
    ],
)
def test_valid_names(name: str, encoded: str) -> None:
    assert dns_name(name) == encoded


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "a DNS name is empty"),
        ("a b", "DNS name 'a b' contains whitespace or control characters"),
        ("a\nb", "DNS name 'a\\nb' contains whitespace or control characters"),
        ("a\x1b[31mb", "contains whitespace or control characters"),
        ("\u202eevil.example", "contains whitespace or control characters"),
        ("*", "a wildcard is only allowed as the whole first label (*.)"),
        ("a.*.example", "a wildcard is only allowed as the whole first label"),
        ("*a.example", "a wildcard is only allowed as the whole first label"),
        ("*.com", "a wildcard needs at least two labels after it"),
        ("x" * 254, "DNS name of 254 characters; at most 253 are allowed"),
        (".".join(["a" * 63] * 4), "DNS name of 255 characters; at most 253"),
        ("a" * 64 + ".example", "has a label of 64 characters; at most 63"),
        ("a..b", "has an empty label"),
        ("a.", "ends with a dot"),
        ("under_score.example", "labels are letters, digits and hyphens"),
        ("-a.example", "labels are letters, digits and hyphens"),
        ("a-.example", "labels are letters, digits and hyphens"),
        ("127.0.0.1", "'127.0.0.1' is an IP address: give it with --ip"),
        ("::1", "is an IP address"),
        ("☃.net", "is not a valid internationalised name"),
        ("ü" * 70 + ".example", "is not a valid internationalised name"),
    ],
)
def test_invalid_names_are_one_clear_line(name: str, reason: str) -> None:
    with pytest.raises(InvalidDnsName) as info:
        dns_name(name)
    message = str(info.value)
    assert reason in message
    assert "\n" not in message
    assert "\x1b" not in message
    assert len(message) < 250


@given(st.text(max_size=300))
def test_any_text_is_a_name_or_one_line_error(name: str) -> None:
    try:
        encoded, problem = dns_name(name), ""
    except InvalidDnsName as exc:
        encoded, problem = "", str(exc)
    if problem:
        assert "\n" not in problem
    else:
        assert encoded.isascii()
        assert 0 < len(encoded) <= 253
        assert all(0 < len(label) <= 63 for label in encoded.split("."))
        assert not any(ch.isspace() for ch in encoded)
