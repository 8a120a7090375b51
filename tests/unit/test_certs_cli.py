"""`kube-autorollout certs` without a cluster: generate files, print the webhook configuration."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from autorollout.cli.main import main

pytestmark = pytest.mark.unit


def test_generate_writes_ca_cert_and_private_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tls"
    code = main(
        [
            "certs",
            "generate",
            "--out",
            str(out),
            "--dns",
            "webhook.tools.svc",
            "a.example",
            "--ip",
            "127.0.0.1",
        ]
    )
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    assert stat.S_IMODE((out / "tls.key").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["webhook.tools.svc", "a.example"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    assert cert.issuer == ca.subject


def test_generate_needs_a_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "generate", "--out", str(tmp_path)]) == 2
    assert "at least one --dns" in capsys.readouterr().err


def test_generate_rejects_a_bad_ip_and_secret_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "generate", "--out", str(tmp_path), "--ip", "not-an-ip"]) == 2
    assert "not an IP address" in capsys.readouterr().err
    assert main(["certs", "generate", "--out", str(tmp_path), "--dns", "a", "--secret", "no-slash"]) == 2
    assert "NAMESPACE/NAME" in capsys.readouterr().err


def test_webhook_config_prints_yaml_with_the_ca_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "generate", "--out", str(tmp_path), "--dns", "w.tools.svc"]) == 0
    capsys.readouterr()
    code = main(
        [
            "certs",
            "webhook-config",
            "--name",
            "kar",
            "--service",
            "tools/w",
            "--ca-file",
            str(tmp_path / "ca.crt"),
            "--namespace",
            "team-a",
            "--namespace-label",
            "env=dev",
        ]
    )
    assert code == 0
    document = yaml.safe_load(capsys.readouterr().out)
    (webhook,) = document["webhooks"]
    assert document["metadata"]["name"] == "kar"
    assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == (tmp_path / "ca.crt").read_bytes()
    assert webhook["clientConfig"]["service"] == {
        "namespace": "tools",
        "name": "w",
        "path": "/mutate",
        "port": 443,
    }
    assert webhook["namespaceSelector"]["matchExpressions"][0]["values"] == ["team-a"]
    assert webhook["namespaceSelector"]["matchLabels"] == {"env": "dev"}


def test_webhook_config_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "webhook-config", "--url", "http://insecure/mutate"]) == 2
    assert "https://" in capsys.readouterr().err
    assert (
        main(["certs", "webhook-config", "--url", "https://a/mutate", "--ca-file", str(tmp_path / "x")]) == 2
    )
    assert "cannot read CA file" in capsys.readouterr().err
    assert main(["certs", "webhook-config", "--url", "https://a/mutate", "--namespace-label", "novalue"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["certs", "webhook-config", "--url", "https://a/mutate", "--service", "a/b"])
    assert exited.value.code == 2


def test_inject_checks_the_ca_file_before_the_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "ca.crt"
    bad.write_text("nothing here")
    code = main(
        ["certs", "inject-cabundle", "--name", "x", "--ca-file", str(bad), "--kubeconfig", "/nonexistent"]
    )
    assert code == 2
    assert "no PEM certificate" in capsys.readouterr().err
