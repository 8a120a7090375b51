"""The product image, built for real from the Dockerfile with buildah on a Debian base made here.

Built once per session (tests/fixtures/image.py; minutes on a fresh machine, nothing when the inputs
are unchanged), pushed with `buildah push` to a local registry with TLS and htpasswd auth, run with
runc on a read-only root as the image says. Also the chart, packaged and pushed as an OCI artifact.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from autorollout import __version__
from tests.harness.buildah import buildah, inspect, mounted_rootfs
from tests.harness.chart_oci import push_chart
from tests.harness.helm import CHART_DIR
from tests.harness.image import BuiltImage, bud, leaked_secrets, push_image
from tests.harness.registry import LocalRegistry
from tests.harness.runc import run_in_image

pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]

MAX_COMPRESSED_MB = 80
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
)


def _manifest(registry: LocalRegistry, repository: str, reference: str) -> dict[str, Any]:
    auth = (registry.username or "", registry.password or "") if registry.username else None
    with httpx.Client(verify=registry.verify, auth=auth, timeout=30.0) as client:
        response = client.get(
            f"{registry.url}/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_TYPES}
        )
    response.raise_for_status()
    manifest: dict[str, Any] = response.json()
    return manifest


def _installed_kib(root: Path) -> int:
    return int(
        subprocess.run(
            ["du", "-sk", "-x", str(root)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )


def test_image_config_runs_the_program_as_non_root(built_image: BuiltImage) -> None:
    config = inspect(built_image.name)["OCIv1"]["config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["kube-autorollout"]
    assert config["Cmd"] == ["run"]
    assert set(config["ExposedPorts"]) == {"8443/tcp", "8080/tcp"}
    assert config["WorkingDir"] == "/tmp"
    env = dict(item.partition("=")[::2] for item in config["Env"])
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert not [name for name in env if name.startswith("PIP_")], "no pip setting of the build is baked in"


def test_final_image_has_no_pip_no_compiler_and_no_build_secret(built_image: BuiltImage) -> None:
    with mounted_rootfs(built_image.name) as root:
        files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        names = {p.name for p in files}
        assert not {"gcc", "cc", "c++", "g++", "cpp", "as", "ld"} & names, "no compiler or binutils"
        assert not [p for p in (root / "opt/venv/bin").iterdir() if p.name.startswith("pip")]
        assert not list(root.glob("opt/venv/lib/python3*/site-packages/pip"))
        assert not list(root.glob("usr/local/lib/python3*/site-packages/pip"))
        assert not (root / "run/secrets").is_dir() or not any((root / "run/secrets").iterdir())
        assert "pip.conf" not in names
        assert leaked_secrets(root) == [], "a build secret reached the final image"
    result = run_in_image(built_image.name, ["python", "-c", "import pip"])
    assert result.returncode != 0
    assert "No module named 'pip'" in result.stderr


def test_the_secret_search_finds_a_secret_copied_into_a_layer(
    built_image: BuiltImage, tmp_path: Path
) -> None:
    # The search above can fail: a Dockerfile that copies the mounted secret into its root leaks it.
    (tmp_path / "Dockerfile").write_text(
        "ARG PYTHON_IMAGE\nFROM ${PYTHON_IMAGE}\n"
        "RUN --mount=type=secret,id=pip-ca cp /run/secrets/pip-ca /leaked\n"
    )
    name = "localhost/kube-autorollout-leak:test"
    bud(tmp_path, name, built_image.base, log_path=tmp_path / "build.log")
    try:
        with mounted_rootfs(name) as root:
            assert leaked_secrets(root) == [root / "leaked"]
    finally:
        buildah("rmi", name)


def test_image_runs_read_only_as_uid_65532(built_image: BuiltImage) -> None:
    version = run_in_image(built_image.name, ["kube-autorollout", "--version"])
    assert (version.returncode, version.stdout.strip()) == (0, f"kube-autorollout {__version__}"), (
        version.stderr
    )
    python = run_in_image(built_image.name, ["python", "--version"])
    assert python.stdout.startswith("Python 3.11."), "the Dockerfile targets Python 3.11 (Debian bookworm's)"
    usage = run_in_image(built_image.name, ["kube-autorollout", "--help"])
    assert usage.returncode == 0, usage.stderr
    assert usage.stdout.startswith("usage: kube-autorollout")
    script = (
        "id -u; id -g; kube-autorollout certs generate --out /tmp/certs --dns kar.example.svc"
        " >/dev/null && ls /tmp/certs; touch /opt/venv/written 2>/dev/null || echo read-only"
    )
    result = run_in_image(built_image.name, ["/bin/sh", "-c", script])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["65532", "65532", "ca.crt", "tls.crt", "tls.key", "read-only"]


def test_pushed_image_sizes(
    built_image: BuiltImage, registry_tls_basic: LocalRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = push_image(built_image, registry_tls_basic, "kube-autorollout", "test")
    manifest = _manifest(registry_tls_basic, "kube-autorollout", "test")
    assert _manifest(registry_tls_basic, "kube-autorollout", digest) == manifest
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    layers = manifest["layers"]
    assert all(layer["mediaType"].endswith("tar+gzip") for layer in layers)
    compressed = sum(layer["size"] for layer in layers)
    base_compressed = layers[0]["size"]  # the base is one layer, the first
    base_layers = inspect(built_image.base)["OCIv1"]["rootfs"]["diff_ids"]
    assert len(base_layers) == 1
    with mounted_rootfs(built_image.name) as root:
        installed = _installed_kib(root)
        venv = _installed_kib(root / "opt" / "venv")
    with mounted_rootfs(built_image.base) as root:
        base_installed = _installed_kib(root)
    mb = 1e6
    sizes = ", ".join(f"{layer['size'] / mb:.2f}" for layer in layers)
    with capsys.disabled():
        print(
            f"\n[image] {len(layers)} layers ({sizes} MB), {compressed / mb:.1f} MB compressed"
            f" (base {base_compressed / mb:.1f} MB, {100 * base_compressed / compressed:.0f}%);"
            f" installed {installed * 1024 / mb:.1f} MB (base {base_installed * 1024 / mb:.1f} MB,"
            f" {100 * base_installed / installed:.0f}%; /opt/venv {venv * 1024 / mb:.1f} MB)"
        )
    assert compressed <= MAX_COMPRESSED_MB * mb


def test_chart_as_oci_artifact_is_served_back_with_the_ca_and_credentials(
    registry_tls_basic: LocalRegistry, tmp_path: Path
) -> None:
    artifact = push_chart(registry_tls_basic, tmp_path / "helm")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", artifact.digest)
    assert artifact.reference == f"oci://{registry_tls_basic.host}/charts/kube-autorollout"
    shown = artifact.helm("show", "values", artifact.reference, "--version", artifact.version)
    assert yaml.safe_load(shown.stdout) == yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    (tmp_path / "pulled").mkdir()
    pulled = artifact.helm(
        "pull", artifact.reference, "--version", artifact.version, "--destination", str(tmp_path / "pulled")
    )
    assert artifact.digest in pulled.stdout + pulled.stderr
    with tarfile.open(tmp_path / "pulled" / f"kube-autorollout-{artifact.version}.tgz") as archive:
        chart = yaml.safe_load(archive.extractfile("kube-autorollout/Chart.yaml").read())  # type: ignore[union-attr]
    assert chart["version"] == artifact.version
    # Without the login, the registry refuses (the artifact is really behind htpasswd).
    anonymous = artifact.helm(
        "show",
        "chart",
        artifact.reference,
        "--version",
        artifact.version,
        check=False,
        env={"HELM_REGISTRY_CONFIG": str(tmp_path / "none.json")},
    )
    assert anonymous.returncode != 0
    assert "basic credential not found" in anonymous.stderr or "401" in anonymous.stderr
    password = registry_tls_basic.password or ""
    assert password
    assert not [text for text in artifact.transcript if password in text]
