"""Authorization header values (checked before sending, errors that name the source and never the
value) and the redaction of credentials from quoted registry text."""

from __future__ import annotations

import base64

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autorollout.credentials import RegistryCredentials
from autorollout.registry.authorization import (
    REDACTED,
    basic_authorization,
    bearer_authorization,
    credential_problem,
    redact,
    secret_forms,
)
from autorollout.registry.errors import InvalidCredentialsError, RegistryError

pytestmark = pytest.mark.unit

SOURCE = "registries[2].secret (Secret regcred, key TOKEN, from the environment)"
SECRET = "s3cr3t-Value"


# --- header values ----------------------------------------------------------------------------------


def test_basic_value_is_utf8_base64_as_docker_sends_it() -> None:
    assert basic_authorization(RegistryCredentials("jane", "pw")) == "Basic " + base64.b64encode(
        b"jane:pw"
    ).decode("ascii")
    umlaut = basic_authorization(RegistryCredentials("jürgen", "pässwörd"))
    assert base64.b64decode(umlaut.removeprefix("Basic ")) == "jürgen:pässwörd".encode()
    assert umlaut.isascii()


def test_bearer_value() -> None:
    assert bearer_authorization("eyJ.abc-_~+/=", source="of x") == "Bearer eyJ.abc-_~+/="


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (f"{SECRET}\nsecond-line", "control character"),
        (f"{SECRET}\r\nX-Injected: 1", "control character"),
        (f"{SECRET}\x00", "control character"),
        (f"{SECRET}\x7f", "control character"),
        (f"{SECRET}\u0085x", "control character"),
        (f"{SECRET}\u00e9", "non-ASCII"),
        (f"{SECRET}\u200b", "non-ASCII"),  # zero-width space: invisible, not whitespace, not ASCII
        (f"{SECRET} part", "space"),
    ],
)
def test_a_token_that_cannot_be_a_header_is_refused_naming_the_source(value: str, fragment: str) -> None:
    creds = RegistryCredentials(token=value, source=SOURCE)
    assert creds.token is not None
    with pytest.raises(InvalidCredentialsError) as info:
        bearer_authorization(creds.token, source=f"of {SOURCE}")
    message = str(info.value)
    assert fragment in message
    assert SOURCE in message
    assert SECRET not in message
    assert isinstance(info.value, RegistryError)
    assert not info.value.retryable


def test_basic_credentials_are_checked_too() -> None:
    with pytest.raises(InvalidCredentialsError, match=r"the password of imagePullSecret ns/p .*control"):
        basic_authorization(RegistryCredentials("u", f"{SECRET}\nmore", source="imagePullSecret ns/p"))
    with pytest.raises(
        InvalidCredentialsError, match='the username of the configured credentials contains ":"'
    ):
        basic_authorization(RegistryCredentials("a:b", SECRET))
    with pytest.raises(InvalidCredentialsError, match="is empty"):
        bearer_authorization("", source="issued by the token service http://t")


def test_credential_problem_accepts_what_registries_issue() -> None:
    jwt = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"
    for value in (jwt, "ghp_" + "A" * 36, "AKCp8abc", "a!#$%&'*+-.^_`|~z"):
        assert credential_problem(value, raw_header=True) is None
    assert credential_problem("pässwört mit Leerzeichen", raw_header=False) is None


@given(st.text())
def test_every_value_is_either_refused_or_a_legal_header(text: str) -> None:
    value = "Zq9" + text  # a start no message has, so any echo of the value would show
    try:
        header = bearer_authorization(value, source="of x")
    except InvalidCredentialsError as exc:
        message = str(exc)
        assert "Zq9" not in message
        return
    assert all(0x20 <= ord(c) < 0x7F for c in header)
    # h11 (what httpx sends with) takes it: no LocalProtocolError quoting the value.
    h11.Request(method="GET", target="/", headers=[("Host", "r"), ("Authorization", header.encode())])


# --- redaction --------------------------------------------------------------------------------------


def test_secret_forms_cover_every_way_a_credential_is_sent() -> None:
    login = RegistryCredentials("jane", SECRET)
    encoded = base64.b64encode(f"jane:{SECRET}".encode()).decode()
    assert secret_forms(login) == {SECRET, f"jane:{SECRET}", encoded, f"Basic {encoded}"}
    assert secret_forms(RegistryCredentials(token=SECRET)) == {SECRET, f"Bearer {SECRET}"}
    assert secret_forms(None, ["Bearer issued.jwt"]) == {"Bearer issued.jwt", "issued.jwt"}
    assert secret_forms(RegistryCredentials(username="only-a-name")) == set()


def test_redact_replaces_every_form_and_leaves_the_rest() -> None:
    creds = RegistryCredentials("jane", SECRET)
    header = basic_authorization(creds)
    echoed = f"UNAUTHORIZED: got Authorization: {header} for jane (password {SECRET}), again {SECRET}"
    redacted = redact(echoed, secret_forms(creds, [header]))
    assert (
        redacted
        == f"UNAUTHORIZED: got Authorization: {REDACTED} for jane (password {REDACTED}), again {REDACTED}"
    )
    assert redact("nothing to hide", {SECRET}) == "nothing to hide"
    assert redact("anything", set()) == "anything"
    assert redact("aaaa", {"aa", "aaa"}) == REDACTED  # overlapping occurrences: one marker


def test_redact_never_lets_the_marker_form_a_secret() -> None:
    # The marker followed by "x" would spell the secret "]x": the text is withheld instead.
    assert redact("ab!x", {"ab!", "]x"}) == "(text withheld: it quoted a credential)"
    assert redact("e", {"e"}) == ""  # the marker and the fixed text both contain "e"


@given(
    st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4),
    st.lists(st.text(max_size=30), min_size=1, max_size=6),
)
def test_redaction_removes_any_credential(secrets: list[str], fillers: list[str]) -> None:
    # Secrets embedded anywhere, any number of times, next to each other or inside other text.
    text = "".join(filler + secrets[i % len(secrets)] for i, filler in enumerate(fillers))
    result = redact(text, secrets)
    for secret in secrets:
        assert secret not in result
    assert redact(result, secrets) == result  # nothing left to redact


def test_redacted_before_the_200_character_cut() -> None:
    # Cut first, the text would end in the start of the token, which no longer matches it whole.
    token = "T0KEN" * 8
    body = "-" * 170 + f"Authorization: Bearer {token}"
    assert token[:8] in body[:200]
    quoted = redact(body, secret_forms(RegistryCredentials(token=token)))[:200]
    assert quoted == "-" * 170 + "Authorization: " + REDACTED
