"""The installed `kube-autorollout digest` console script against the real registry in each set-up,
configured the way users configure it (config file, mounted .dockerconfigjson, ${VAR} tokens)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.integration

SCRIPT = Path(sys.prefix) / "bin" / "kube-autorollout"


Invocation = tuple[tuple[str, ...], Path | None, Mapping[str, str] | None]


def run_many(*invocations: Invocation) -> list[subprocess.CompletedProcess[str]]:
    """Run several `kube-autorollout digest ARGS [--config PATH]` at once (start-up dominates)."""
    processes = []
    for args, config, env in invocations:
        environ = {k: v for k, v in os.environ.items() if k != "CONFIG_FILE"} | dict(env or {})
        command = [str(SCRIPT), "digest", *args] + (["--config", str(config)] if config else [])
        processes.append(
            (
                command,
                subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ
                ),
            )
        )
    results = []
    for command, process in processes:
        try:
            stdout, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
        results.append(subprocess.CompletedProcess(command, process.returncode, stdout, stderr))
    return results


def run_digest(
    *args: str, config: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_many((args, config, env))[0]


def write_config(directory: Path, document: dict[str, object]) -> Path:
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def pull_secret_dir(directory: Path, registry: LocalRegistry, password: str | None = None) -> Path:
    """A directory as Kubernetes mounts an ImagePullSecret: `.dockerconfigjson` inside."""
    mount = directory / "pull-secret"
    mount.mkdir()
    auth = base64.b64encode(f"{registry.username}:{password or registry.password}".encode()).decode()
    (mount / ".dockerconfigjson").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    return mount


def pull_secret_config(directory: Path, registry: LocalRegistry, password: str | None = None) -> Path:
    mount = pull_secret_dir(directory, registry, password)
    return write_config(
        directory,
        {
            "cronSchedule": "*/45 * * * * *",
            "registries": [
                {
                    "hostnamePattern": "127.0.0.1:*",
                    "secret": {"type": "ImagePullSecret", "name": "registry-creds", "mountPath": str(mount)},
                }
            ],
        },
    )


def _config_for(registry: LocalRegistry, directory: Path) -> Path:
    if registry.mode == "plain":
        return write_config(directory, {"cronSchedule": "*/45 * * * * *"})
    if registry.mode == "tls":
        return write_config(directory, {"tls": {"caCertificatePaths": [str(registry.ca_file)]}})
    return pull_secret_config(directory, registry)


def test_digest_and_platforms_in_each_setup(
    any_registry: LocalRegistry, unique_repo: str, tmp_path: Path
) -> None:
    digest = any_registry.push_image(f"{unique_repo}/single", "v1", seed=1)
    index_digest, by_platform = any_registry.push_index(f"{unique_repo}/multi", "latest", seed=2)
    config = _config_for(any_registry, tmp_path)
    single, multi = run_many(
        ((f"{any_registry.host}/{unique_repo}/single:v1",), config, None),
        (("--platforms", f"{any_registry.host}/{unique_repo}/multi"), config, None),
    )
    assert (single.returncode, single.stdout, single.stderr) == (0, digest + "\n", "")
    assert multi.returncode == 0, multi.stderr
    assert multi.stdout.splitlines() == [
        index_digest,
        f"{by_platform['linux/amd64']}  linux/amd64",
        f"{by_platform['linux/arm64']}  linux/arm64",
    ]


def test_token_registry_with_opaque_username_and_env_token(
    registry_token: LocalRegistry, unique_repo: str, tmp_path: Path
) -> None:
    digest = registry_token.push_image(unique_repo, "v1", seed=3)
    config = write_config(
        tmp_path,
        {
            "registries": [
                {
                    "hostnamePattern": registry_token.host,
                    "secret": {"type": "Opaque", "username": "tester", "token": "${REGISTRY_PASSWORD}"},
                }
            ]
        },
    )
    result = run_digest(
        f"{registry_token.host}/{unique_repo}:v1",
        config=config,
        env={"REGISTRY_PASSWORD": registry_token.password or ""},
    )
    assert (result.returncode, result.stdout) == (0, digest + "\n"), result.stderr


def test_failures_are_one_line_and_exit_1(
    registry_basic: LocalRegistry, unique_repo: str, tmp_path: Path
) -> None:
    registry_basic.push_image(unique_repo, "v1", seed=4)
    (tmp_path / "good").mkdir()
    (tmp_path / "wrong").mkdir()
    good = pull_secret_config(tmp_path / "good", registry_basic)
    wrong = pull_secret_config(tmp_path / "wrong", registry_basic, password="wrong-password")
    image = f"{registry_basic.host}/{unique_repo}"
    missing, denied, anonymous = run_many(
        ((f"{image}:nope",), good, None),
        ((f"{image}:v1",), wrong, None),
        ((f"{image}:v1",), None, None),
    )
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr.count("\n") == 1
    assert "NotFoundError" in missing.stderr
    assert "'nope'" in missing.stderr

    assert denied.returncode == 1
    assert "UnauthorizedError" in denied.stderr
    assert "wrong-password" not in denied.stderr
    assert denied.stderr.count("\n") == 1

    assert anonymous.returncode == 1
    assert "no credentials are configured" in anonymous.stderr


def test_tls_without_ca_is_a_tls_error(registry_tls: LocalRegistry, unique_repo: str) -> None:
    registry_tls.push_image(unique_repo, "v1", seed=5)
    result = run_digest(f"{registry_tls.host}/{unique_repo}:v1")
    assert result.returncode == 1
    assert "RegistryTlsError" in result.stderr
    assert "tls.caCertificatePaths" in result.stderr


def test_bad_config_and_bad_input_exit_2(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    bad = write_config(tmp_path, {"registries": [{"hostnamePattern": "x", "secret": {"type": "Magic"}}]})
    absent = tmp_path / "absent.crt"
    missing_ca = write_config(tmp_path / "a", {"tls": {"caCertificatePaths": [str(absent)]}})
    bad_config, bad_ca, bad_reference = run_many(
        (("nginx",), bad, None),
        (("nginx",), missing_ca, None),
        (("Not A Reference!",), write_config(tmp_path / "b", {}), None),
    )
    assert bad_config.returncode == 2
    assert "registries" in bad_config.stderr
    assert bad_ca.returncode == 2
    assert str(absent) in bad_ca.stderr
    assert bad_reference.returncode == 2
    assert "invalid image reference" in bad_reference.stderr
    for result in (bad_config, bad_ca, bad_reference):
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
