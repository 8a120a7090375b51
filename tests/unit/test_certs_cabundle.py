"""The webhook configuration as rendered, the caBundle patch, and the TLS Secret object."""

from __future__ import annotations

import base64

import jsonpatch
import pytest

from certs.cabundle import (
    TEMPLATE_CHANGED_CONDITION,
    WEBHOOK_NAME,
    ServiceTarget,
    WebhookConfigError,
    ca_bundle_operations,
    namespace_selector_for,
    render_webhook_configuration,
)
from certs.mint import mint_ca
from certs.secret import tls_secret

pytestmark = pytest.mark.unit

CA_PEM, _ = mint_ca("test CA")


def test_rendered_configuration_scopes_and_fails_open() -> None:
    config = render_webhook_configuration(
        "kube-autorollout",
        service=ServiceTarget("tools", "kube-autorollout-webhook"),
        ca_pem=CA_PEM,
        namespace_selector=namespace_selector_for(["team-b", "team-a"]),
    )
    assert config["apiVersion"] == "admissionregistration.k8s.io/v1"
    assert config["kind"] == "MutatingWebhookConfiguration"
    assert config["metadata"] == {"name": "kube-autorollout"}
    (webhook,) = config["webhooks"]
    assert webhook["name"] == WEBHOOK_NAME
    assert webhook["clientConfig"] == {
        "service": {"namespace": "tools", "name": "kube-autorollout-webhook", "path": "/mutate", "port": 443},
        "caBundle": base64.b64encode(CA_PEM).decode(),
    }
    assert webhook["rules"] == [
        {
            "apiGroups": ["apps"],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["deployments", "statefulsets", "daemonsets"],
            "scope": "Namespaced",
        }
    ]
    assert webhook["objectSelector"] == {"matchLabels": {"kube-autorollout/enabled": "true"}}
    assert webhook["namespaceSelector"] == {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}
        ]
    }
    assert webhook["sideEffects"] == "None"
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["timeoutSeconds"] == 5
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["matchConditions"] == [TEMPLATE_CHANGED_CONDITION]


def test_url_client_config_and_defaults() -> None:
    config = render_webhook_configuration("x", url="https://127.0.0.1:9443/mutate")
    (webhook,) = config["webhooks"]
    assert webhook["clientConfig"] == {"url": "https://127.0.0.1:9443/mutate"}
    assert webhook["namespaceSelector"] == {}


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({}, "exactly one of a URL or a Service"),
        ({"url": "https://a/mutate", "service": ServiceTarget("a", "b")}, "exactly one"),
        ({"url": "http://127.0.0.1/mutate"}, "must start with https://"),
        ({"url": "https://a/mutate", "timeout_seconds": 31}, "timeoutSeconds"),
        ({"url": "https://a/mutate", "ca_pem": b"not a certificate"}, "no PEM certificate"),
    ],
)
def test_bad_input_is_a_config_error(kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(WebhookConfigError, match=reason):
        render_webhook_configuration("x", **kwargs)  # type: ignore[arg-type]


def test_ca_bundle_patch_sets_every_webhook_guarded_by_resource_version() -> None:
    current = render_webhook_configuration("x", url="https://a/mutate")
    current["webhooks"].append({**current["webhooks"][0], "name": "second.kube-autorollout.io"})
    current["metadata"]["resourceVersion"] = "42"
    operations = ca_bundle_operations(current, CA_PEM)
    assert operations[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}
    result = jsonpatch.apply_patch(current, operations)
    assert [w["clientConfig"]["caBundle"] for w in result["webhooks"]] == [
        base64.b64encode(CA_PEM).decode()
    ] * 2
    stale = {**current, "metadata": {"name": "x", "resourceVersion": "41"}}
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(stale, operations)


def test_ca_bundle_needs_webhooks() -> None:
    with pytest.raises(WebhookConfigError, match="has no webhooks"):
        ca_bundle_operations({"metadata": {"name": "x"}, "webhooks": []}, CA_PEM)


def test_tls_secret_holds_the_three_files() -> None:
    secret = tls_secret("tools", "webhook-tls", ca_pem=b"ca", cert_pem=b"crt", key_pem=b"key")
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"] == {"name": "webhook-tls", "namespace": "tools"}
    assert {k: base64.b64decode(v) for k, v in secret["data"].items()} == {
        "ca.crt": b"ca",
        "tls.crt": b"crt",
        "tls.key": b"key",
    }
