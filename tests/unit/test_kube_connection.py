"""Reading a kubeconfig without the official client (its import alone costs ~50 MB of RSS)."""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from autorollout.kube.connection import _simple_kubeconfig, load_connection
from certs.mint import mint_ca, mint_serving_cert

pytestmark = pytest.mark.unit


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _write(tmp_path: Path, user: dict[str, Any], cluster_extra: dict[str, Any] | None = None) -> Path:
    ca_pem, _ = mint_ca("test")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://127.0.0.1:6443/",
                    "certificate-authority-data": _b64(ca_pem),
                    **(cluster_extra or {}),
                },
            }
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}}],
        "current-context": "ctx",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_token_user_is_read_without_the_official_client(tmp_path: Path) -> None:
    path = _write(tmp_path, {"token": "abc"})
    settings = load_connection(str(path))
    assert settings.server == "https://127.0.0.1:6443"
    assert settings.namespace == "team-a"
    assert settings.token is not None
    assert settings.token.current() == "abc"
    assert isinstance(settings.ssl_context, ssl.SSLContext)
    assert settings.ssl_context.cert_store_stats()["x509_ca"] == 1


def test_client_certificate_data_is_loaded(tmp_path: Path) -> None:
    ca_pem, ca_key = mint_ca("client ca")
    cert, key = mint_serving_cert(ca_pem, ca_key, ["client"], [])
    path = _write(tmp_path, {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)})
    settings = _simple_kubeconfig(str(path))
    assert settings is not None
    assert settings.token is None
    assert list(tmp_path.iterdir()) == [path]  # no key material left behind


def test_token_file_is_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    settings = _simple_kubeconfig(str(_write(tmp_path, {"tokenFile": "token"})))
    assert settings is not None
    assert settings.token is not None
    assert settings.token.current() == "from-file"


def test_insecure_skip_verify(tmp_path: Path) -> None:
    settings = _simple_kubeconfig(str(_write(tmp_path, {}, {"insecure-skip-tls-verify": True})))
    assert settings is not None
    assert settings.ssl_context is False


@pytest.mark.parametrize(
    "user",
    [
        {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "get-token"}},
        {"auth-provider": {"name": "oidc"}},
        {"username": "admin", "password": "secret"},
    ],
)
def test_other_authentication_is_left_to_the_official_loader(tmp_path: Path, user: dict[str, Any]) -> None:
    assert _simple_kubeconfig(str(_write(tmp_path, user))) is None


def test_missing_or_broken_files_are_left_to_the_official_loader(tmp_path: Path) -> None:
    assert _simple_kubeconfig(str(tmp_path / "absent")) is None
    (tmp_path / "broken").write_text("clusters: [")
    assert _simple_kubeconfig(str(tmp_path / "broken")) is None


def test_no_kubeconfig_at_all_is_reported_without_importing_the_official_client(tmp_path: Path) -> None:
    # `webhook` without a kubeconfig imported the official client (~35 MiB of RSS) only to fail.
    script = (
        "import sys\n"
        "from autorollout.kube.connection import load_connection\n"
        "from autorollout.kube.errors import KubeConfigError\n"
        "for path in (None, sys.argv[1]):\n"
        "    try:\n"
        "        load_connection(path)\n"
        "    except KubeConfigError as exc:\n"
        "        print(exc)\n"
        "print('kubernetes' in sys.modules)\n"
    )
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")}
    absent = str(tmp_path / "absent")
    out = subprocess.run(
        [sys.executable, "-c", script, absent],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    assert out == [
        "cannot load kubeconfig ~/.kube/config: Invalid kube-config file. No configuration found.",
        f"cannot load kubeconfig {absent}: Invalid kube-config file. No configuration found.",
        "False",
    ]
