"""`hostnamePattern` matching: `*` globs, case, ports, and Docker Hub's several host names."""

from __future__ import annotations

import pytest

from autorollout.patterns import host_matches

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("pattern", "host"),
    [
        ("ghcr.io", "ghcr.io"),
        ("GHCR.io", "ghcr.IO"),
        ("*.artifactory.example.com", "docker-local.artifactory.example.com"),
        ("*.example.com", "a.b.example.com"),  # "*" spans dots
        ("registry.*.com", "registry.foo.com"),
        ("*", "anything:5000"),
        ("localhost:5000", "localhost:5000"),
        ("localhost:*", "localhost:5000"),
        ("127.0.0.1:*", "127.0.0.1:41234"),
        ("[::1]:5000", "[::1]:5000"),
        ("*example.com", "example.com"),
        # Upstream: the docker.io entry covers docker.io and registry-1.docker.io (and index.docker.io).
        ("docker.io", "docker.io"),
        ("docker.io", "registry-1.docker.io"),
        ("docker.io", "index.docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("*.docker.io", "docker.io"),
    ],
)
def test_matches(pattern: str, host: str) -> None:
    assert host_matches(pattern, host)


@pytest.mark.parametrize(
    ("pattern", "host"),
    [
        ("ghcr.io", "ghcr.io.evil.com"),
        ("ghcr.io", "xghcr.io"),
        ("*.artifactory.example.com", "artifactory.example.com"),
        ("localhost", "localhost:5000"),  # the port is part of the host matched
        ("localhost:5000", "localhost:5001"),
        ("ghcr.io", "ghcrxio"),  # "." is literal
        ("ghcr.i?", "ghcr.io"),  # "?" is literal
        ("[a]cr.io", "acr.io"),  # "[" is literal
        ("", "ghcr.io"),
        ("docker.io", "quay.io"),
        ("docker.io", "docker.io:5000"),
        ("quay.io", "registry-1.docker.io"),
    ],
)
def test_does_not_match(pattern: str, host: str) -> None:
    assert not host_matches(pattern, host)


def test_literal_question_mark_and_brackets_match_themselves() -> None:
    assert host_matches("ghcr.i?", "ghcr.i?")
    assert host_matches("[a]cr.io", "[a]cr.io")
