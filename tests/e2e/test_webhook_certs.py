"""`kube-autorollout certs` against the local control plane: the TLS Secret, the webhook
configuration applied without a CA, and the caBundle injected afterwards."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography import x509

from tests.e2e.webhook_process import (
    SCOPE_LABEL,
    apply,
    digests_of,
    join_scope,
    new_scope,
    run_cli,
    start_webhook,
    unregister,
    wait_active,
    workload,
)
from tests.harness.cluster import LocalCluster
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e


def test_generate_writes_and_updates_a_tls_secret(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    target = f"{namespace}/webhook-tls"
    args = ["--dns", f"webhook.{namespace}.svc", "--secret", target, "--kubeconfig", str(cluster.kubeconfig)]

    first = run_cli("certs", "generate", "--out", str(tmp_path / "one"), *args)
    second = run_cli("certs", "generate", "--out", str(tmp_path / "two"), *args)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert f"wrote Secret {target} (kubernetes.io/tls)" in second.stdout
    secret = json.loads(cluster.kubectl("get", "secret", "webhook-tls", "-n", namespace, "-o", "json").stdout)
    assert secret["type"] == "kubernetes.io/tls"
    data = {key: base64.b64decode(value) for key, value in secret["data"].items()}
    assert data == {
        "ca.crt": (tmp_path / "two" / "ca.crt").read_bytes(),
        "tls.crt": (tmp_path / "two" / "tls.crt").read_bytes(),
        "tls.key": (tmp_path / "two" / "tls.key").read_bytes(),
    }
    cert = x509.load_pem_x509_certificate(data["tls.crt"])
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [f"webhook.{namespace}.svc"]


def test_configuration_without_ca_starts_working_once_the_ca_bundle_is_injected(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, tmp_path: Path
) -> None:
    registry.push_image("e2e/certs-probe", "latest", seed=21)
    image = f"{registry.host}/e2e/certs-probe:latest"
    process = start_webhook(tmp_path / "webhook", cluster)
    scope = new_scope()
    name = f"kar-e2e-{scope}"
    kubeconfig = ["--kubeconfig", str(cluster.kubeconfig)]
    try:
        applied = run_cli(
            "certs",
            "webhook-config",
            "--name",
            name,
            "--url",
            process.url,
            "--namespace-label",
            f"{SCOPE_LABEL}={scope}",
            "--apply",
            *kubeconfig,
        )
        assert applied.returncode == 0, applied.stderr
        join_scope(cluster, namespace, scope)
        # Without a caBundle the API server cannot verify the webhook: failurePolicy Ignore admits as is.
        untrusted = apply(cluster, workload("Deployment", "before", namespace, [("app", image)]))
        assert untrusted.returncode == 0
        before = json.loads(
            cluster.kubectl("get", "deployment", "before", "-n", namespace, "-o", "json").stdout
        )
        assert digests_of(before) == {}
        configuration = json.loads(
            cluster.kubectl("get", "mutatingwebhookconfiguration", name, "-o", "json").stdout
        )
        assert "caBundle" not in configuration["webhooks"][0]["clientConfig"]

        injected = run_cli(
            "certs", "inject-cabundle", "--name", name, "--ca-file", str(process.ca_file), *kubeconfig
        )

        assert injected.returncode == 0, injected.stderr
        wait_active(cluster, namespace, image)
        apply(cluster, workload("Deployment", "after", namespace, [("app", image)]))
        after = json.loads(
            cluster.kubectl("get", "deployment", "after", "-n", namespace, "-o", "json").stdout
        )
        assert set(digests_of(after)) == {"app"}
        missing = run_cli(
            "certs",
            "inject-cabundle",
            "--name",
            f"{name}-absent",
            "--ca-file",
            str(process.ca_file),
            *kubeconfig,
        )
        assert missing.returncode == 1
        assert "404" in missing.stderr
    finally:
        unregister(cluster, name)
        assert process.stop() == 0
