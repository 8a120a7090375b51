"""What the command line prints from a registry: one line each, nothing that steers a terminal."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autorollout.cli.digest import format_result
from autorollout.registry.manifests import OCI_INDEX, ManifestDigest, PlatformManifest
from autorollout.terminal import terminal_safe, terminal_safe_lines

pytestmark = pytest.mark.unit

_UNSAFE = {"Cc", "Cf", "Cs", "Zl", "Zp"}


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux\n9f86d081  windows/amd64", "linux\\x0a9f86d081  windows/amd64"),
        ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
        ("\x9b31m", "\\x9b31m"),  # the 8-bit CSI
        ("a\rb\tc\x00d\x7f", "a\\x0db\\x09c\\x00d\\x7f"),
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),  # right-to-left override
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028sep", "line\\u2028sep"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        ("arm64/v8 é 日本", "arm64/v8 é 日本"),
    ],
)
def test_unsafe_characters_are_escaped(text: str, shown: str) -> None:
    assert terminal_safe(text) == shown


def test_limit_cuts_with_an_ellipsis() -> None:
    assert terminal_safe("x" * 10, 10) == "x" * 10
    assert terminal_safe("x" * 11, 10) == "x" * 7 + "..."
    assert terminal_safe("\x1b" * 50, 10) == "\\x1b..."  # an escape is never cut in two


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.one_of(st.none(), st.integers(3, 100)))
def test_output_is_one_printable_line(text: str, limit: int | None) -> None:
    safe = terminal_safe(text, limit)
    assert all(unicodedata.category(ch) not in _UNSAFE for ch in safe)
    assert len(safe.splitlines()) <= 1
    safe.encode("utf-8")  # no lone surrogate left to make print() raise
    if limit is not None:
        assert len(safe) <= limit


def test_platform_lines_cannot_be_forged_or_steer_the_terminal() -> None:
    digest = "sha256:" + "a" * 64
    entry = PlatformManifest(
        digest=digest,
        media_type="m",
        os="linux\nsha256:b",
        architecture="\x1b]0;pwned\x07amd64",
        variant="v" * 500,
    )
    result = ManifestDigest(digest=digest, media_type=OCI_INDEX, platforms=(entry,))
    lines = format_result(result, platforms=True).splitlines()
    assert len(lines) == 2
    assert lines[1].startswith(f"{digest}  linux\\x0asha256:b/")
    assert "\x1b" not in lines[1]
    assert "\\x1b]0;pwned\\x07amd64" in lines[1]
    assert len(lines[1]) <= len(digest) + 2 + 100


def test_a_table_keeps_its_lines_and_loses_its_escapes() -> None:
    table = "NAMESPACE  WORKLOAD  STATUS\nteam  web  error: \x1b[31mgone\rx\u2028forged  row\n"
    assert terminal_safe_lines(table) == (
        "NAMESPACE  WORKLOAD  STATUS\nteam  web  error: \\x1b[31mgone\\x0dx\\u2028forged  row\n"
    )
    assert terminal_safe_lines("no newline at the end") == "no newline at the end\n"
    assert terminal_safe_lines("") == ""
