"""Credentials the reconciler uses, against registries that echo every request back and a token that
no header can carry: `reconcile --once` output, `status`, the RegistryLookupFailed Events and the
workload objects quote the registries' errors (redacted) and name the broken secret, but never show
a credential. The values end in a newline, as `kubectl create secret --from-file` leaves them."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

import pytest

from autorollout.registry.authorization import REDACTED
from tests.e2e import reconciler_helpers as rh
from tests.harness.cluster import LocalCluster
from tests.harness.echoregistry import EchoRegistry
from tests.harness.registry import TEST_USER
from tests.harness.tokenserver import SERVICE, TokenServer

pytestmark = pytest.mark.e2e

RECORDED = "sha256:" + "0" * 64


def test_no_credential_reaches_events_status_or_output(
    cluster: LocalCluster, namespace: str, token_service: TokenServer, tmp_path: Path
) -> None:
    password = token_service.users[TEST_USER]
    static = "tok-" + secrets.token_urlsafe(24)
    unsendable = f"t\u00f6ken-{secrets.token_hex(12)}"
    echoes = {
        "bearer": EchoRegistry(403, None),
        "basic": EchoRegistry(403, 'Basic realm="echo"'),
        "flow": EchoRegistry(500, f'Bearer realm="{token_service.realm}",service="{SERVICE}"'),
        "unsendable": EchoRegistry(403, None),
    }
    try:
        pulled = {"auths": {echoes["basic"].host: {"username": TEST_USER, "password": password + "\n"}}}
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "echo-pull", "namespace": namespace},
            "data": {".dockerconfigjson": base64.b64encode(json.dumps(pulled).encode()).decode()},
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))
        registries = [
            {"hostnamePattern": echoes["bearer"].host, "secret": {"type": "Opaque", "token": static + "\n"}},
            {
                "hostnamePattern": echoes["flow"].host,
                "secret": {"type": "Opaque", "username": TEST_USER, "token": password + "\n"},
            },
            {"hostnamePattern": echoes["unsendable"].host, "secret": {"type": "Opaque", "token": unsendable}},
        ]
        for name, echo in echoes.items():
            manifest = rh.workload(
                "Deployment",
                name,
                namespace,
                [("app", f"{echo.host}/team/app:latest")],
                recorded={"app": RECORDED},
            )
            if name == "basic":
                manifest["spec"]["template"]["spec"]["imagePullSecrets"] = [{"name": "echo-pull"}]
            rh.apply(cluster, manifest)
        config = rh.write_config(tmp_path / "config.yaml", [namespace], registries=registries)

        once = rh.run_cli(cluster, config, "reconcile", "--once")
        status = rh.run_cli(cluster, config, "status")
        failed = rh.events(cluster, namespace, "RegistryLookupFailed")
    finally:
        for echo in echoes.values():
            echo.close()

    assert once.returncode == 1, once.stderr
    assert "registry errors 4" in once.stdout
    messages = {e["involvedObject"]["name"]: e["message"] for e in failed}
    assert sorted(messages) == ["basic", "bearer", "flow", "unsendable"]
    for name in ("basic", "bearer", "flow"):
        assert f"DENIED: Authorization: {REDACTED}" in messages[name], messages[name]  # quoted, redacted
    assert "InvalidCredentialsError" in messages["unsendable"]
    assert "registries[2].secret.token contains a non-ASCII character" in messages["unsendable"]
    assert echoes["unsendable"].connections == 0

    captured = {
        "reconcile --once": once.stdout + once.stderr,
        "status": status.stdout + status.stderr,
        "events": cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout,
        "workloads": cluster.kubectl("get", "deployments", "-n", namespace, "-o", "json").stdout,
    }
    sent = [header for echo in echoes.values() for header in echo.authorizations]
    assert len(sent) >= 3
    forbidden = {"password": password, "static token": static, "unsendable token": unsendable}
    forbidden |= {f"Authorization #{i}": h for i, h in enumerate(sent)}
    forbidden |= {f"credential #{i}": h.split(" ", 1)[1] for i, h in enumerate(sent)}
    forbidden |= {f"start of {name}": value[:16] for name, value in list(forbidden.items())}
    leaks = [
        f"{what} in {where}" for where, text in captured.items() for what, v in forbidden.items() if v in text
    ]
    assert leaks == []
    size = sum(len(text) for text in captured.values())
    print(f"searched {size} characters of {len(captured)} outputs for {len(forbidden)} secrets")
