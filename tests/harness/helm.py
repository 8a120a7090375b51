"""Run the cached `helm` binary on the chart: lint, render to parsed objects, install."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.harness.cluster import install_binaries

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "kube-autorollout"
VALUES_DIR = REPO_ROOT / "tests" / "fixtures" / "chart-values"
# The Kubernetes version `helm template` assumes (it has no cluster to ask).
KUBE_VERSION = "1.37.2"

Manifest = dict[str, Any]


class HelmError(subprocess.CalledProcessError):
    """helm exited non-zero; the message carries helm's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {(self.stderr or '').strip()}"


@functools.cache
def helm_binary() -> Path:
    """The helm that scripts/install-cluster-binaries.sh built (nothing is built when it is cached)."""
    return install_binaries().find("helm")


def run_helm(
    *args: str, env: Mapping[str, str] | None = None, check: bool = True, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """`helm <args>`; raises HelmError on failure when `check`."""
    argv = [str(helm_binary()), *args]
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise HelmError(result.returncode, argv, result.stdout, result.stderr)
    return result


def values_args(
    values_files: Sequence[str | Path] = (), set_values: Mapping[str, str] | None = None
) -> list[str]:
    """`-f` for each values file (a bare name is taken from tests/fixtures/chart-values) and `--set`."""
    args: list[str] = []
    for item in values_files:
        path = Path(item)
        if not path.is_absolute() and path.parent == Path():
            path = VALUES_DIR / path
        args += ["-f", str(path)]
    for key, value in (set_values or {}).items():
        args += ["--set", f"{key}={value}"]
    return args


def render(
    values_files: Sequence[str | Path] = (),
    set_values: Mapping[str, str] | None = None,
    *,
    release: str = "kar",
    namespace: str = "autorollout",
) -> list[Manifest]:
    """`helm template` of the chart, parsed into objects (empty documents dropped)."""
    result = run_helm(
        "template",
        release,
        str(CHART_DIR),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        *values_args(values_files, set_values),
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(objects: Sequence[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    """The objects of `kind` (and `name`, when given)."""
    return [
        obj for obj in objects if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]


def only(objects: Sequence[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The single object of `kind` (and `name`); fails when there is none or more than one."""
    found = find(objects, kind, name)
    if len(found) != 1:
        names = [obj["metadata"]["name"] for obj in objects if obj["kind"] == kind]
        raise AssertionError(f"expected exactly one {kind} {name or ''}, found {names}")
    return found[0]
