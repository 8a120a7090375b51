"""The Dockerfile: hadolint-clean, a hardened final stage, a build context that holds what it copies.

That its install steps produce a working program is checked in tests/integration/test_image_install.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.dockerfile import Instruction, parse_dockerfile, run_command, stage_named

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"
STAGES = parse_dockerfile(DOCKERFILE.read_text())
BUILDER = stage_named(STAGES, "builder")
FINAL = STAGES[-1]


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_final_stage_runs_the_program_as_non_root_without_build_tools() -> None:
    by_keyword = {i.keyword: i.arguments for i in FINAL}
    assert by_keyword["USER"] == "65532:65532"
    assert by_keyword["ENTRYPOINT"] == '["kube-autorollout"]'
    assert by_keyword["CMD"] == '["run"]'
    assert set(by_keyword["EXPOSE"].split()) == {"8443", "8080"}
    copies = [i.arguments for i in FINAL if i.keyword == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"], "only the virtual environment is carried over"
    runs = " ".join(i.arguments for i in FINAL if i.keyword == "RUN")
    assert "apt-get" not in runs
    assert "pip uninstall" in runs
    assert "PYTHONDONTWRITEBYTECODE=1" in by_keyword["ENV"]


def test_both_stages_share_one_base_image() -> None:
    # The venv's interpreter is a symlink to the base image's Python: both stages need the same one.
    assert FINAL[0] == Instruction("FROM", "${PYTHON_IMAGE}")
    assert BUILDER[0] == Instruction("FROM", "${PYTHON_IMAGE} AS builder")
    assert "ARG PYTHON_IMAGE=python:3.11-slim\n" in DOCKERFILE.read_text()


def test_dependencies_come_from_the_pinned_constraints_only() -> None:
    commands = [run_command(i.arguments) for i in BUILDER if i.keyword == "RUN"]
    installs = [c for c in commands if "pip install" in c]
    assert installs[0] == "pip install --require-virtualenv -r constraints.txt"
    assert installs[1].startswith("pip install --require-virtualenv --no-deps . && pip check")


def test_dockerignore_lets_exactly_the_copied_paths_through() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = set()
    for instruction in BUILDER:
        if instruction.keyword == "COPY":
            *sources, _dest = instruction.arguments.split()
            copied.update(s.rstrip("/") for s in sources)
    assert copied == allowed


def test_constraints_pin_exact_versions() -> None:
    lines = [
        line
        for line in (REPO_ROOT / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines, "constraints.txt is empty"
    assert [line for line in lines if "==" not in line] == []


def test_parse_dockerfile_joins_continuations_and_skips_comments() -> None:
    text = "ARG X=1\nFROM a AS b\n# note\nRUN one \\\n    # inner comment\n    && two\nFROM c\nUSER 1\n"
    assert parse_dockerfile(text) == [
        [Instruction("FROM", "a AS b"), Instruction("RUN", "one && two")],
        [Instruction("FROM", "c"), Instruction("USER", "1")],
    ]
    assert run_command("--mount=type=cache,target=/x pip install y") == "pip install y"
