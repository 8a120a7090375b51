"""scripts/install-cluster-binaries.sh's version selection, against the real Go module proxy."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.harness.cluster import INSTALL_SCRIPT

pytestmark = pytest.mark.integration

_STABLE = re.compile(r"v1\.(\d+)\.(\d+)")


def _script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INSTALL_SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def test_newest_minors_are_the_newest_patch_of_each_of_the_newest_stable_minors() -> None:
    listed = subprocess.run(
        ["go", "list", "-m", "-versions", "k8s.io/kubernetes"],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
        check=True,
    ).stdout.split()[1:]
    newest_patch: dict[int, int] = {}
    for version in listed:
        if match := _STABLE.fullmatch(version):
            minor, patch = int(match.group(1)), int(match.group(2))
            newest_patch[minor] = max(patch, newest_patch.get(minor, -1))
    expected = [f"v1.{minor}.{newest_patch[minor]}" for minor in sorted(newest_patch, reverse=True)[:4]]

    result = _script("--newest-minors", "4")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected
    assert len(expected) == 4


@pytest.mark.parametrize("argv", [("--newest-minors",), ("--newest-minors", "0"), ("--build",)])
def test_bad_arguments_are_rejected_with_usage(argv: tuple[str, ...]) -> None:
    result = _script(*argv)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("version", ["1.35", "v1.35.4-rc.0", "latest", "v2.0.0"])
def test_malformed_kube_version_is_rejected_before_anything_is_built(version: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = _script(env={"KUBE_VERSION": version, "KAR_CACHE": str(cache)})
    assert result.returncode == 2
    assert f"KUBE_VERSION must look like v1.37.2, got '{version}'" in result.stderr
    assert not cache.exists()


def test_kube_version_without_v_selects_the_same_cached_release() -> None:
    # The default release is cached by `make cluster-binaries` before the suite runs; both spellings
    # must name the same directory (the harness and the tests compare it with the server's gitVersion).
    with_v = _script()
    assert with_v.returncode == 0, with_v.stderr
    release = re.search(r"kubernetes-(v1\.\d+\.\d+)", with_v.stdout.splitlines()[-1])
    assert release is not None
    without_v = _script(env={"KUBE_VERSION": release.group(1).removeprefix("v")})
    assert without_v.returncode == 0, without_v.stderr
    assert without_v.stdout.splitlines()[-1] == with_v.stdout.splitlines()[-1]
    assert "cached in" in without_v.stderr
