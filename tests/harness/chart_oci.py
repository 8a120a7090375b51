"""The chart as an OCI artifact: `helm package` and `helm push` to a local registry, as upstream publishes it.

helm runs with its own config, cache and registry-login file in a work directory (nothing in the
user's ~/.config/helm); credentials reach it on stdin (`helm registry login --password-stdin`), never
on a command line. `ChartArtifact.env` and `.flags` are what a later `helm show`/`pull`/`install` of
the artifact needs (the login file, and the registry's CA or `--plain-http`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.harness.helm import CHART_DIR, HelmError, helm_binary, run_helm
from tests.harness.registry import LocalRegistry

CHART_NAME = "kube-autorollout"


@dataclass(frozen=True)
class ChartArtifact:
    """A pushed chart: `reference` ("oci://<host>/<repository>/kube-autorollout"), its `version`
    and `digest`, the helm environment and flags that reach it, and the `transcript` of every helm
    output so far (tests search it for credentials)."""

    reference: str
    version: str
    digest: str
    env: dict[str, str]
    flags: tuple[str, ...]
    transcript: list[str] = field(default_factory=list, compare=False)

    def helm(
        self, *args: str, check: bool = True, env: Mapping[str, str] | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """`helm <args> <flags>` in the artifact's helm environment (`env` overrides parts of it)."""
        result = run_helm(*args, *self.flags, env={**self.env, **(env or {})}, check=check, timeout=timeout)
        self.transcript.extend([result.stdout, result.stderr])
        return result


def helm_environment(workdir: Path) -> dict[str, str]:
    """A helm of its own under `workdir`: config, cache, data and registry login there."""
    env = {"PATH": f"{helm_binary().parent}:/usr/bin:/bin", "HOME": str(workdir)}
    for name in ("CONFIG", "CACHE", "DATA"):
        env[f"HELM_{name}_HOME"] = str(workdir / name.lower())
    env["HELM_REGISTRY_CONFIG"] = str(workdir / "registry.json")
    return env


def registry_flags(registry: LocalRegistry) -> tuple[str, ...]:
    if registry.ca_file is not None:
        return ("--ca-file", str(registry.ca_file))
    return ("--plain-http",)


def push_chart(registry: LocalRegistry, workdir: Path, repository: str = "charts") -> ChartArtifact:
    """Package charts/kube-autorollout and push it to `registry` under `repository`, logging in
    first when the registry has a user."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = helm_environment(workdir)
    flags = registry_flags(registry)
    transcript = _login(registry, env, flags) if registry.username is not None else []
    packaged = run_helm("package", str(CHART_DIR), "--destination", str(workdir), env=env)
    archive = Path(packaged.stdout.strip().rpartition(": ")[2])
    version = str(yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["version"])
    pushed = run_helm("push", str(archive), f"oci://{registry.host}/{repository}", *flags, env=env)
    digest = next(
        (
            line.split()[-1]
            for line in (pushed.stdout + pushed.stderr).splitlines()
            if line.startswith("Digest:")
        ),
        "",
    )
    transcript += [packaged.stdout, packaged.stderr, pushed.stdout, pushed.stderr]
    reference = f"oci://{registry.host}/{repository}/{CHART_NAME}"
    return ChartArtifact(reference, version, digest, env, flags, transcript)


def _login(registry: LocalRegistry, env: dict[str, str], flags: tuple[str, ...]) -> list[str]:
    argv = [str(helm_binary()), "registry", "login", registry.host, "--username", registry.username or ""]
    argv += ["--password-stdin", *flags]
    result = subprocess.run(
        argv, input=registry.password, capture_output=True, text=True, env=env, timeout=60, check=False
    )
    if result.returncode != 0:
        raise HelmError(result.returncode, argv, result.stdout, result.stderr)
    return [result.stdout, result.stderr]
