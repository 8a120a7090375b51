"""Image reference parsing: the forms Kubernetes accepts, Docker Hub normalization, and clear errors."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autorollout.references import (
    ImageReference,
    InvalidReferenceError,
    is_valid_digest,
    parse_image_reference,
)

pytestmark = pytest.mark.unit

HEX = "0123456789abcdef" * 4
DIGEST = f"sha256:{HEX}"


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", None, None),
        ("nginx:1.27", "docker.io", "library/nginx", "1.27", None),
        ("library/nginx", "docker.io", "library/nginx", None, None),
        ("myorg/app:main", "docker.io", "myorg/app", "main", None),
        ("docker.io/library/nginx", "docker.io", "library/nginx", None, None),
        ("docker.io/nginx", "docker.io", "library/nginx", None, None),
        ("index.docker.io/nginx:latest", "docker.io", "library/nginx", "latest", None),
        ("index.docker.io/org/app", "docker.io", "org/app", None, None),
        # Docker treats registry-1.docker.io as a host of its own: no alias, no "library/".
        ("registry-1.docker.io/library/nginx", "registry-1.docker.io", "library/nginx", None, None),
        ("registry-1.docker.io/nginx", "registry-1.docker.io", "nginx", None, None),
        ("host:5000/a/b/c:tag", "host:5000", "a/b/c", "tag", None),
        ("ghcr.io/org/app:main", "ghcr.io", "org/app", "main", None),
        ("localhost/x", "localhost", "x", None, None),
        ("localhost:5000/x", "localhost:5000", "x", None, None),
        ("127.0.0.1:5000/team/app:v1", "127.0.0.1:5000", "team/app", "v1", None),
        ("10.0.0.1/app", "10.0.0.1", "app", None, None),
        ("[::1]:5000/x:tag", "[::1]:5000", "x", "tag", None),
        ("[fe80::1]/x", "[fe80::1]", "x", None, None),
        (f"nginx@{DIGEST}", "docker.io", "library/nginx", None, DIGEST),
        (f"nginx:1.27@{DIGEST}", "docker.io", "library/nginx", "1.27", DIGEST),
        (f"localhost:5000/x:t@{DIGEST}", "localhost:5000", "x", "t", DIGEST),
        ("Registry.Example.COM:443/app", "registry.example.com:443", "app", None, None),
        ("Foo/bar", "Foo", "bar", None, None),  # uppercase marks a host; kept so it reparses
        ("a__b/c-d.e_f--g:T_.-x", "docker.io", "a__b/c-d.e_f--g", "T_.-x", None),
        ("example.com:5000", "docker.io", "library/example.com", "5000", None),  # as Docker reads it
        ("x:" + "t" * 128, "docker.io", "library/x", "t" * 128, None),
        (f"x@sha512:{'ab' * 64}", "docker.io", "library/x", None, f"sha512:{'ab' * 64}"),
        ("host:1/x", "host:1", "x", None, None),
        ("host:65535/x", "host:65535", "x", None, None),
        ("[::1]:65535/x", "[::1]:65535", "x", None, None),
    ],
)
def test_accepted_forms(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    assert parse_image_reference(text) == ImageReference(registry, repository, tag, digest)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "is empty"),
        ("nginx ", "whitespace"),
        ("NGINX", "must be lowercase"),
        ("ghcr.io/Org/app", "must be lowercase"),
        ("nginx:", "empty tag"),
        ("nginx:-x", "invalid tag"),
        ("nginx:.x", "invalid tag"),
        ("x:" + "t" * 129, "invalid tag"),
        ("a//b", "empty path component"),
        ("/a", "empty path component"),
        ("a/", "empty path component"),
        ("a/-b", "invalid repository path component"),
        ("a/b_", "invalid repository path component"),
        ("a/b___c", "invalid repository path component"),
        (":tag", "missing repository name"),
        (f"@{DIGEST}", "missing repository name"),
        ("nginx@sha256:abc", "invalid digest"),
        (f"nginx@sha256:{HEX.upper()}", "lowercase"),
        (f"nginx@sha256:{HEX}00", "64 hex digits"),
        (f"nginx@md5:{HEX[:32]}", "unsupported digest algorithm"),
        (f"nginx@@{DIGEST}", "invalid digest"),
        (HEX, "image ID"),
        ("host:abc/x", "invalid registry host"),
        ("-host.io/x", "invalid registry host"),
        ("[::1/x", "invalid registry host"),
        ("[::1]:5000", "invalid repository path component"),
        ("ex.com/" + "a" * 250, "longer than 255"),
        ("host:99999/x:tag", "registry port 99999 is not in 1-65535"),
        ("host:65536/x", "registry port 65536 is not in 1-65535"),
        ("host:0/x", "registry port 0 is not in 1-65535"),
        ("host:00000/x", "registry port 00000 is not in 1-65535"),
        ("127.0.0.1:70000/x", "registry port 70000 is not in 1-65535"),
        ("[::1]:65536/x", "registry port 65536 is not in 1-65535"),
        ("host:" + "9" * 5000 + "/x", "registry port 9999999999... is not in 1-65535"),
    ],
)
def test_rejected_forms_name_the_input_and_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        parse_image_reference(text)
    assert reason in str(info.value)
    assert str(info.value).startswith(f"invalid image reference {text[:200]!r}"[:40])
    assert info.value.reference == text


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        (DIGEST, True),
        (f"sha384:{'0' * 96}", True),
        (f"sha512:{'f' * 128}", True),
        ("sha256:../../etc/passwd", False),
        (f"sha256:{HEX.upper()}", False),
        (f"sha256:{HEX[:-1]}", False),
        (f"sha256:{HEX}\n", False),
        (f"sha256:{HEX}0", False),
        (f"md5:{HEX[:32]}", False),
        (HEX, False),
        ("", False),
    ],
)
def test_valid_digest(text: str, valid: bool) -> None:
    assert is_valid_digest(text) is valid


def test_non_string_input_is_an_invalid_reference_not_a_type_error() -> None:
    with pytest.raises(InvalidReferenceError, match="must be a string"):
        parse_image_reference(None)  # type: ignore[arg-type]


def test_long_input_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidReferenceError) as info:
        parse_image_reference("A" * 10_000)
    assert len(str(info.value)) < 400


def test_properties() -> None:
    hub = parse_image_reference("nginx")
    assert hub.api_host == "registry-1.docker.io"
    assert hub.tag_or_latest == "latest"
    assert hub.repository_key == "docker.io/library/nginx:latest"
    assert hub.name == "docker.io/library/nginx"
    assert not hub.is_pinned
    assert str(hub) == "docker.io/library/nginx:latest"

    pinned = parse_image_reference(f"ghcr.io/org/app:main@{DIGEST}")
    assert pinned.is_pinned
    assert pinned.api_host == "ghcr.io"
    assert pinned.repository_key == "ghcr.io/org/app:main"
    assert str(pinned) == f"ghcr.io/org/app:main@{DIGEST}"
    assert str(parse_image_reference(f"x@{DIGEST}")) == f"docker.io/library/x@{DIGEST}"
    assert parse_image_reference("registry-1.docker.io/library/x").api_host == "registry-1.docker.io"
    assert parse_image_reference("localhost:5000/x").api_host == "localhost:5000"


def test_same_image_written_differently_has_one_repository_key() -> None:
    forms = [
        "nginx",
        "nginx:latest",
        "library/nginx",
        "docker.io/library/nginx:latest",
        "index.docker.io/nginx",
    ]
    assert {parse_image_reference(f).repository_key for f in forms} == {"docker.io/library/nginx:latest"}


# --- property tests ------------------------------------------------------------------------------
# Strategies are built from small pieces (not regexes) so that the whole file runs in about a second.

_alnum = st.text("abcxyz0189", min_size=1, max_size=4)
_label = st.one_of(_alnum, st.tuples(_alnum, st.sampled_from(["-", "--", "X"]), _alnum).map("".join))
_port = st.integers(min_value=1, max_value=65535).map(lambda p: f":{p}")
_dotted = st.lists(_label, min_size=2, max_size=3).map(".".join)
_ipv4 = st.lists(st.integers(0, 255).map(str), min_size=4, max_size=4).map(".".join)
_host = st.one_of(
    st.tuples(_dotted, st.sampled_from(["", ":5000", ":443"])).map("".join),
    st.tuples(_label, _port).map("".join),
    st.tuples(_ipv4, _port).map("".join),
    st.sampled_from(
        ["localhost", "docker.io", "index.docker.io", "registry-1.docker.io", "[::1]:5000", "Foo"]
    ),
)
_component = st.tuples(_alnum, st.sampled_from(["", ".", "_", "__", "-", "---"]), _alnum).map(
    lambda parts: parts[0] + (parts[1] + parts[2] if parts[1] else "")
)
_path = st.lists(_component, min_size=1, max_size=3).map("/".join)
_tag = st.tuples(st.sampled_from(["v", "V", "0", "_", "latest"]), st.text("aZ09_.-", max_size=6)).map("".join)
_digest = st.sampled_from(["sha256:" + HEX, "sha256:" + HEX[::-1], "sha512:" + "0f" * 64])


@st.composite
def reference_texts(draw: st.DrawFn) -> str:
    """Valid references in any of the written forms, registry and tag optional."""
    host, path = draw(st.one_of(st.none(), _host)), draw(_path)
    if host is None:
        # Without a registry the first component must not read as one ("a.b/c" names host "a.b").
        first, _, rest = path.partition("/")
        path = first.replace(".", "-") + ("/" + rest if rest else "")
    text = path if host is None else f"{host}/{path}"
    if draw(st.booleans()):
        text += ":" + draw(_tag)
    if draw(st.booleans()):
        text += "@" + draw(_digest)
    return text


@settings(max_examples=75, deadline=None)
@given(reference_texts())
def test_format_parse_format_is_stable(text: str) -> None:
    ref = parse_image_reference(text)
    canonical = str(ref)
    again = parse_image_reference(canonical)
    assert str(again) == canonical
    # The canonical form spells out the implied tag; everything else survives unchanged.
    expected = ref if ref.digest is not None else dataclasses.replace(ref, tag=ref.tag_or_latest)
    assert again == expected
    assert again.repository_key == ref.repository_key


@st.composite
def canonical_references(draw: st.DrawFn) -> ImageReference:
    """ImageReference values as the parser produces them for canonical (fully qualified) text."""
    registry = draw(st.one_of(st.tuples(_dotted, st.sampled_from(["", ":5000"])).map("".join), _host))
    registry = registry if registry == "Foo" else registry.lower()
    repository = draw(_path)
    if registry in ("docker.io", "index.docker.io"):
        registry = "docker.io"
        if "/" not in repository:
            repository = "library/" + repository
    digest = draw(st.one_of(st.none(), _digest))
    tag = draw(st.one_of(st.none(), _tag) if digest is not None else _tag)
    return ImageReference(registry, repository, tag, digest)


@settings(max_examples=75, deadline=None)
@given(canonical_references())
def test_parse_of_str_is_identity(ref: ImageReference) -> None:
    assert parse_image_reference(str(ref)) == ref


_reference_alphabet = st.sampled_from([*"aAz09:/@.-_[]+ ", "sha256:", "localhost", HEX, "docker.io/"])


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(_reference_alphabet, max_size=10).map("".join)))
def test_arbitrary_text_parses_or_raises_invalid_reference_only(text: str) -> None:
    outcome: ImageReference | InvalidReferenceError
    try:
        outcome = parse_image_reference(text)
    except InvalidReferenceError as exc:
        outcome = exc
    if isinstance(outcome, InvalidReferenceError):
        assert outcome.reference == text
    else:
        assert parse_image_reference(str(outcome)).repository_key == outcome.repository_key


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(st.integers(0, 200_000), st.integers(0, 10**30)), st.sampled_from(["host", "[::1]", "10.0.0.1"])
)
def test_a_registry_port_is_accepted_exactly_when_a_socket_takes_it(port: int, host: str) -> None:
    text = f"{host}:{port}/team/app:v1"
    if 1 <= port <= 65535:
        assert parse_image_reference(text).api_host == f"{host}:{port}"
    else:
        with pytest.raises(InvalidReferenceError, match="is not in 1-65535"):
            parse_image_reference(text)
