"""The Dockerfile's text: hadolint-clean, both stages on one base, pinned dependencies, a build context
that holds what it copies.

That it builds, and what the image holds and does, is checked on the real image in
tests/integration/test_image_build.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.image import CONTEXT_PATHS

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
TEXT = DOCKERFILE.read_text()
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_both_stages_share_one_base_image() -> None:
    # The venv's interpreter is a symlink to the base image's Python: both stages need the same one.
    assert re.findall(r"^FROM .*$", TEXT, re.MULTILINE) == [
        "FROM ${PYTHON_IMAGE} AS builder",
        "FROM ${PYTHON_IMAGE}",
    ]
    assert "ARG PYTHON_IMAGE=python:3.11-slim\n" in TEXT


def test_dependencies_come_from_the_pinned_constraints_only() -> None:
    installs = re.findall(r"pip install [^\\\n]*", TEXT)
    assert installs == [
        "pip install --require-virtualenv -r constraints.txt",
        "pip install --require-virtualenv --no-deps . ",
    ]


def test_build_secrets_are_mounted_never_copied() -> None:
    assert not re.search(
        r"^(COPY|ADD|ENV|ARG)\b.*(pip-ca|pip-conf|PIP_CERT|PIP_CONFIG_FILE)", TEXT, re.MULTILINE
    )
    final = TEXT.rpartition("\nFROM ")[2]
    assert "secret" not in final, "the final stage gets no build secret"


def test_dockerignore_lets_exactly_the_copied_paths_through() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = {
        source.rstrip("/")
        for line in re.findall(r"^COPY (?!--from)(.*)$", TEXT, re.MULTILINE)
        for source in line.split()[:-1]
    }
    assert copied == allowed == set(CONTEXT_PATHS)


def test_constraints_pin_exact_versions() -> None:
    lines = [
        line
        for line in (REPO_ROOT / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines, "constraints.txt is empty"
    assert [line for line in lines if "==" not in line] == []
