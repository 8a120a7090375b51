"""Security, end to end: a full flow (webhook admission, reconciler rollouts and registry errors,
`status`, /metrics scrapes) with distinctive credentials of every kind: a mounted ImagePullSecret
(`auth` string), a Kubernetes imagePullSecret (username/password, bearer tokens fetched with it), an
Opaque static bearer token, and a wrong password. None of them may appear in any log line, command
output, Event, workload object or metrics text. Also: the webhook speaks TLS 1.2+ only and answers
no AdmissionReview over plain HTTP."""

from __future__ import annotations

import base64
import json
import secrets
import socket
import ssl
import time
import warnings
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from tests.e2e import reconciler_helpers as rh
from tests.e2e.webhook_process import get, registered, start_webhook, workload
from tests.harness.cluster import LocalCluster
from tests.harness.registry import LocalRegistry, free_port
from tests.harness.tokenserver import SERVICE
from tests.unit.webhook_samples import review
from tests.unit.webhook_samples import workload as sample_workload

pytestmark = pytest.mark.e2e


def _dockerconfig(host: str, username: str, password: str) -> str:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": auth}}})


def _pull_secret(cluster: LocalCluster, namespace: str, name: str, config: str) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": namespace},
        "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def test_no_secret_appears_in_logs_output_events_objects_or_metrics(
    cluster: LocalCluster,
    registry: LocalRegistry,
    registry_basic: LocalRegistry,
    registry_token: LocalRegistry,
    namespace: str,
    unique_repo: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert registry_basic.username is not None
    assert registry_basic.password is not None
    assert registry_token.password is not None
    tokens = registry_token.token_server
    assert tokens is not None
    static_token = tokens.issue(registry_token.username, [f"repository:{unique_repo}:pull"], SERVICE)
    wrong_password = f"wrong-{secrets.token_hex(8)}"
    mounted = _dockerconfig(registry_basic.host, registry_basic.username, registry_basic.password)
    pulled = json.dumps(
        {
            "auths": {
                registry_token.host: {
                    "username": registry_token.username,
                    "password": registry_token.password,
                }
            }
        }
    )
    wrong = _dockerconfig(registry_basic.host, registry_basic.username, wrong_password)
    mount = tmp_path / "basic-pull"
    mount.mkdir()
    (mount / ".dockerconfigjson").write_text(mounted)
    monkeypatch.setenv("KAR_STATIC_TOKEN", static_token)
    registries = [
        {
            "hostnamePattern": registry_basic.host,
            "secret": {"type": "ImagePullSecret", "name": "basic-pull", "mountPath": str(mount)},
        },
        {
            "hostnamePattern": registry_token.host,
            "secret": {"type": "Opaque", "token": "${KAR_STATIC_TOKEN}"},
        },
    ]
    forbidden = {
        "basic password": registry_basic.password,
        "token-registry password": registry_token.password,
        "wrong password": wrong_password,
        "static bearer token": static_token,
        # Every token the token service issues starts with its JWT header segment.
        "issued token header": static_token.split(".", 1)[0],
        "mounted auth": json.loads(mounted)["auths"][registry_basic.host]["auth"],
        "wrong auth": json.loads(wrong)["auths"][registry_basic.host]["auth"],
        "pull secret as base64": base64.b64encode(pulled.encode()).decode()[:40],
    }

    _pull_secret(cluster, namespace, "tok-pull", pulled)
    _pull_secret(cluster, namespace, "wrong-pull", wrong)
    images = {
        "mounted": (registry_basic, f"{unique_repo}-a", ()),
        "k8s-pull": (registry_token, f"{unique_repo}-b", ("tok-pull",)),
        "opaque": (registry_token, unique_repo, ()),
        "wrong": (registry_basic, f"{unique_repo}-c", ("wrong-pull",)),
    }
    for seed, (reg, repo, _) in enumerate(images.values()):
        reg.push_image(repo, "latest", seed=10 + seed)
    probe = f"{registry.host}/{unique_repo}-probe:latest"
    registry.push_image(f"{unique_repo}-probe", "latest", seed=1)

    metrics_port = free_port()
    hook = start_webhook(
        tmp_path / "webhook",
        cluster,
        extra_config={"registries": registries, "webserver": {"port": metrics_port}},
    )
    captured: dict[str, str] = {}
    try:
        with registered(cluster, hook, [namespace], probe):
            for name, (reg, repo, pull) in images.items():
                manifest = workload(
                    "Deployment", name, namespace, [("app", f"{reg.host}/{repo}:latest")], pull_secrets=pull
                )
                result = cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
                captured[f"apply {name}"] = result.stdout + result.stderr
            captured["webhook metrics"] = httpx.get(
                f"http://127.0.0.1:{metrics_port}/metrics", trust_env=False
            ).text
        for name in ("mounted", "k8s-pull", "opaque"):
            recorded = get(cluster, "Deployment", namespace, name)["metadata"].get("annotations", {})
            assert "digest.kube-autorollout/app" in recorded, name  # every kind of credential worked
        assert "digest.kube-autorollout/app" not in (
            get(cluster, "Deployment", namespace, "wrong")["metadata"].get("annotations") or {}
        )
    finally:
        hook.stop()
        captured["webhook log"] = hook.log_text()

    # The tags move; the reconciler rolls out with the same credentials (and fails the wrong one).
    for seed, (reg, repo, _) in enumerate(images.values()):
        reg.push_image(repo, "latest", seed=20 + seed)
    config = rh.write_config(
        tmp_path / "config.yaml",
        [namespace],
        cronSchedule="* * * * * *",
        registries=registries,
        webserver={"port": free_port()},
    )
    log = tmp_path / "reconcile.log"
    process = rh.start_cli(cluster, config, "reconcile", log_path=log)
    try:
        for name in ("mounted", "k8s-pull", "opaque"):
            rh.wait_replicasets(cluster, namespace, name, 2)
        rh.wait_for("a registry error event", lambda: rh.events(cluster, namespace, "RegistryLookupFailed"))
        reconciler_port = yaml.safe_load(config.read_text())["webserver"]["port"]
        captured["reconciler metrics"] = httpx.get(
            f"http://127.0.0.1:{reconciler_port}/metrics", trust_env=False
        ).text
    finally:
        process.terminate()
        process.wait(timeout=20)
    captured["reconciler log"] = log.read_text(errors="replace")
    status = rh.run_cli(cluster, config, "status")
    captured["status"] = status.stdout + status.stderr
    assert "mounted" in status.stdout
    assert "wrong" in status.stdout
    once = rh.run_cli(cluster, config, "reconcile", "--once")
    captured["reconcile --once"] = once.stdout + once.stderr
    captured["events"] = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    captured["workloads"] = cluster.kubectl("get", "deployments", "-n", namespace, "-o", "json").stdout
    assert "wrong" in captured["events"], "the wrong credential's failure is reported"
    assert "RolloutTriggered" in captured["events"]

    leaks = [
        f"{what} in {where}"
        for where, text in captured.items()
        for what, value in forbidden.items()
        if value in text
    ]
    assert leaks == []
    size = sum(len(t) for t in captured.values())
    print(f"searched {size} characters of {len(captured)} outputs for {len(forbidden)} secrets")


# --- webhook TLS ----------------------------------------------------------------------------------


def test_webhook_speaks_tls12_or_newer_only_and_no_plain_http(tmp_path: Path) -> None:
    hook = start_webhook(tmp_path, None)
    try:
        modern = ssl.create_default_context(cafile=str(hook.ca_file))
        with (
            socket.create_connection(("127.0.0.1", hook.port), timeout=5) as raw,
            modern.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        tls12 = ssl.create_default_context(cafile=str(hook.ca_file))
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        answer = httpx.post(
            hook.url, content=orjson.dumps(review(sample_workload(labels={}))), verify=tls12, trust_env=False
        )
        assert answer.status_code == 200

        for old in ("TLSv1", "TLSv1_1"):
            legacy = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            legacy.load_verify_locations(cafile=str(hook.ca_file))
            legacy.set_ciphers("ALL:@SECLEVEL=0")  # the client offers it; the server must refuse
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                legacy.minimum_version = legacy.maximum_version = getattr(ssl.TLSVersion, old)
            with (
                socket.create_connection(("127.0.0.1", hook.port), timeout=5) as raw,
                pytest.raises(ssl.SSLError) as refused,
            ):
                legacy.wrap_socket(raw, server_hostname="localhost")
            assert "NO_PROTOCOLS_AVAILABLE" not in str(refused.value), "the hello was sent"

        with socket.create_connection(("127.0.0.1", hook.port), timeout=5) as raw:
            body = orjson.dumps(review(sample_workload()))
            raw.sendall(
                b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + b"Content-Length: %d\r\n\r\n" % len(body)
                + body
            )
            raw.settimeout(3)
            received = b""
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                try:
                    chunk = raw.recv(65536)
                except (TimeoutError, ConnectionResetError):
                    break
                if not chunk:
                    break
                received += chunk
        assert b"AdmissionReview" not in received
        assert not received.startswith(b"HTTP/1.1 200")
        assert hook.popen.poll() is None
    finally:
        assert hook.stop() == 0
