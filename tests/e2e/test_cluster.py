"""The local control plane itself: controllers, RBAC, admission webhooks on loopback, clean shutdown."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from certs.mint import mint_ca, mint_serving_cert
from tests.harness import cluster as harness
from tests.harness.cluster import (
    REPO_ROOT,
    LocalCluster,
    parse_kube_version,
    requested_kube_version,
    within_kubectl_skew,
)

pytestmark = pytest.mark.e2e

T = TypeVar("T")

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, kube-autorollout/enabled: "true"}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: 127.0.0.1:5000/demo/web:stable
          imagePullPolicy: Always
"""


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll `probe` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def kubectl_json(cluster: LocalCluster, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def test_pod_template_change_makes_controller_manager_create_a_second_replicaset(
    cluster: LocalCluster, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=DEPLOYMENT)
    deployment = kubectl_json(cluster, "get", "deployment", "web", "-n", namespace)

    def replicasets() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = kubectl_json(cluster, "get", "rs", "-n", namespace, "-l", "app=web")[
            "items"
        ]
        return items

    (first,) = wait_until("the first ReplicaSet", replicasets)
    cluster.kubectl(
        "patch",
        "deployment",
        "web",
        "-n",
        namespace,
        "-p",
        '{"spec":{"template":{"metadata":{"annotations":{"kube-autorollout/restartedAt":"2026-01-01T00:00:00Z"}}}}}',
    )

    def two_replicasets() -> list[dict[str, Any]] | None:
        current = replicasets()
        return current if len(current) == 2 else None

    both = wait_until("a second ReplicaSet", two_replicasets)

    (second,) = [rs for rs in both if rs["metadata"]["uid"] != first["metadata"]["uid"]]
    for rs in both:
        (owner,) = rs["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"]) == ("Deployment", deployment["metadata"]["uid"])
    assert second["spec"]["template"]["metadata"]["annotations"] == {
        "kube-autorollout/restartedAt": "2026-01-01T00:00:00Z"
    }
    assert "annotations" not in first["spec"]["template"]["metadata"]
    first_hash = first["metadata"]["labels"]["pod-template-hash"]
    assert second["metadata"]["labels"]["pod-template-hash"] != first_hash
    revisions = sorted(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for rs in both)
    assert revisions == ["1", "2"]


def test_namespace_fixture_gives_an_active_namespace_with_service_account_and_root_ca(
    cluster: LocalCluster, namespace: str
) -> None:
    ns = kubectl_json(cluster, "get", "namespace", namespace)
    assert ns["status"]["phase"] == "Active"
    assert kubectl_json(cluster, "get", "deployments,replicasets,pods", "-n", namespace)["items"] == []
    cluster.kubectl("get", "serviceaccount", "default", "-n", namespace)
    # Published by kube-controller-manager from --root-ca-file: pods could verify the API server.
    configmap = wait_until(
        "kube-root-ca.crt",
        lambda: cluster.api_get(f"/api/v1/namespaces/{namespace}/configmaps/kube-root-ca.crt"),
    )
    assert configmap["data"]["ca.crt"] == cluster.ca_file.read_text()


def test_rbac_is_enforced_for_service_accounts(cluster: LocalCluster, namespace: str) -> None:
    account = f"system:serviceaccount:{namespace}:default"
    as_account = cluster.service_account_kubeconfig(namespace, "default")

    def can_patch() -> str:
        result = cluster.kubectl(
            "auth", "can-i", "patch", "deployments", "-n", namespace, "--as", account, check=False
        )
        return result.stdout.strip()

    assert can_patch() == "no"
    denied = cluster.kubectl("get", "deployments", kubeconfig=as_account, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr
    cluster.kubectl(
        "create", "role", "patcher", "-n", namespace, "--verb=get,list,patch", "--resource=deployments"
    )
    cluster.kubectl(
        "create",
        "rolebinding",
        "patcher",
        "-n",
        namespace,
        "--role=patcher",
        f"--serviceaccount={namespace}:default",
    )
    wait_until("the RoleBinding to take effect", lambda: can_patch() == "yes", timeout=10)
    assert cluster.kubectl("get", "deployments", kubeconfig=as_account).returncode == 0
    whoami = json.loads(cluster.kubectl("auth", "whoami", "-o", "json", kubeconfig=as_account).stdout)
    assert whoami["status"]["userInfo"]["username"] == account


def test_chosen_kubectl_is_within_one_minor_of_the_server(cluster: LocalCluster) -> None:
    versions = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    client = parse_kube_version(versions["clientVersion"]["gitVersion"])
    server = parse_kube_version(versions["serverVersion"]["gitVersion"])
    assert server == cluster.server_version
    assert within_kubectl_skew(client, server), (client, server, cluster.kubectl_path.resolve())
    if requested := requested_kube_version():
        assert versions["serverVersion"]["gitVersion"] == requested


@contextmanager
def labelling_webhook(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """A tiny HTTPS admission webhook on 127.0.0.1 that labels what it admits; yields (url, CA PEM)."""
    ca_cert, ca_key = mint_ca("harness-webhook-ca")
    cert, key = mint_serving_cert(ca_cert, ca_key, ["localhost"], ["127.0.0.1"])
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            patch = [{"op": "add", "path": "/metadata/labels", "value": {"harness-webhook": "called"}}]
            body = json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": {
                        "uid": review["request"]["uid"],
                        "allowed": True,
                        "patchType": "JSONPatch",
                        "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
                    },
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/mutate", ca_cert
    finally:
        server.shutdown()
        server.server_close()


def test_api_server_calls_a_webhook_on_loopback(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    with labelling_webhook(tmp_path) as (url, ca_pem):
        config = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": f"harness-{namespace}"},
            "webhooks": [
                {
                    "name": "label.harness.kube-autorollout.local",
                    "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["configmaps"],
                        }
                    ],
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "failurePolicy": "Fail",
                    "timeoutSeconds": 5,
                }
            ],
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(config))
        try:
            attempts = iter(range(1000))

            def labelled_configmap() -> dict[str, str] | None:
                # The API server picks up a new webhook configuration from its informer, not instantly;
                # the probes are created without labels, so only the webhook can have added one.
                name = f"probe-{next(attempts)}"
                manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
                cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest))
                labels: dict[str, str] = kubectl_json(cluster, "get", "configmap", name, "-n", namespace)[
                    "metadata"
                ].get("labels", {})
                return labels or None

            labels = wait_until("the webhook to label a ConfigMap", labelled_configmap, timeout=15)
            assert labels == {"harness-webhook": "called"}
        finally:
            cluster.kubectl("delete", "mutatingwebhookconfiguration", f"harness-{namespace}", check=False)


def process_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (exited, but its parent has not reaped it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_second_cluster_runs_beside_the_first_and_stop_leaves_no_process(cluster: LocalCluster) -> None:
    second = LocalCluster(cluster.binaries).start()
    try:
        assert second.server != cluster.server
        assert second.run_dir != cluster.run_dir
        assert (
            second.kubectl("get", "namespace", "default", "-o", "name").stdout.strip() == "namespace/default"
        )
        print(f"second cluster startup: {second.timings}")
        assert second.timings["total"] < 60
    finally:
        second.stop()
    assert len(second.pids) == 3
    assert [pid for pid in second.pids if process_running(pid)] == []
    for pid in second.pids:
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # the whole process group is gone, not only its leader
    assert not second.run_dir.exists()
    assert cluster.kubectl("get", "namespace", "default", "-o", "name").returncode == 0


def test_a_port_taken_meanwhile_is_retried_with_fresh_ports(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    calls: list[int] = []

    def first_etcd_ports_taken(count: int) -> list[int]:
        calls.append(count)
        ports = real_free_ports(count)
        return [taken.getsockname()[1], *ports[1:]] if len(calls) == 1 else ports

    real_free_ports = harness.free_ports
    monkeypatch.setattr(harness, "free_ports", first_etcd_ports_taken)
    local = LocalCluster(cluster.binaries)
    try:
        local.start()
        assert "address already in use" in (local.run_dir / "etcd.log").read_text()
        assert (
            local.kubectl("get", "namespace", "default", "-o", "name").stdout.strip() == "namespace/default"
        )
    finally:
        local.stop()
        taken.close()
    assert calls[:2] == [2, 2]


CHILD = """
import json, sys, time
from pathlib import Path
from tests.harness.cluster import ClusterBinaries, LocalCluster
cluster = LocalCluster(ClusterBinaries(tuple(Path(p) for p in sys.argv[1:]))).start()
print(json.dumps({"pids": cluster.pids, "run_dir": str(cluster.run_dir)}), flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_interrupted_owner_leaves_no_process(cluster: LocalCluster, sig: signal.Signals) -> None:
    """Ctrl-C and SIGTERM stop the cluster through the exit hooks; SIGKILL through the parent-death signal."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *map(str, cluster.binaries.path_dirs)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started: dict[str, Any] | None = None
    try:
        assert child.stdout is not None
        started = json.loads(child.stdout.readline() or "null")
        assert started is not None, child.communicate(timeout=10)[1]
        assert all(process_running(pid) for pid in started["pids"])
        child.send_signal(sig)
        child.wait(timeout=20)
        wait_until(
            "the control plane processes to exit",
            lambda: not any(process_running(pid) for pid in started["pids"]),
            timeout=15,
        )
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if started:
            shutil.rmtree(started["run_dir"], ignore_errors=True)
