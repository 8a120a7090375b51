"""The webhook as a real `kube-autorollout webhook` process, registered in the local control plane.

Each registration is a MutatingWebhookConfiguration scoped by a namespaceSelector to namespaces that
carry one run-unique label, so other tests sharing the cluster are never sent to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from certs.mint import write_bundle
from tests.harness.cluster import LocalCluster
from tests.harness.commands import webhook_flags
from tests.harness.registry import free_port

T = TypeVar("T")
CLI = str(Path(sys.executable).with_name("kube-autorollout"))
DIGEST_PREFIX = "digest.kube-autorollout/"
SCOPE_LABEL = "kube-autorollout-e2e/webhook"


@dataclass
class WebhookProcess:
    """A running webhook process; its combined output is in `log_path`."""

    port: int
    ca_file: Path
    log_path: Path
    popen: subprocess.Popen[bytes] = field(repr=False)
    probe_port: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/mutate"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, wait; returns the exit code (idempotent)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        return self.popen.returncode


def start_webhook(
    workdir: Path,
    cluster: LocalCluster | None,
    *,
    policy: str = "mutate",
    budget: float = 1.5,
    cache_ttl: float = 60.0,
    extra_config: dict[str, Any] | None = None,
    command: str = "webhook",
    kubeconfig: Path | None = None,
) -> WebhookProcess:
    """Mint certificates for 127.0.0.1, write a config, start the process and wait until it answers.

    `command="run"` starts the whole product (webhook, reconciler, probe server on `probe_port`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    probe_port = free_port()  # a port of its own: tests run several processes at once
    bundle = write_bundle(workdir / "tls", ["localhost"], ["127.0.0.1"])
    config = {
        "logLevel": "debug",
        "digestCacheTtlSeconds": cache_ttl,
        "webhook": {"imagePullPolicy": policy, "lookupBudgetSeconds": budget},
        "webserver": {"port": probe_port},
        **(extra_config or {}),
    }
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [
        CLI,
        command,
        "--config",
        str(config_path),
        *webhook_flags(bundle.tls_cert, bundle.tls_key, port),
    ]
    if kubeconfig is None and cluster is not None:
        kubeconfig = cluster.kubeconfig
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    log_path = workdir / "webhook.log"
    env = {k: v for k, v in os.environ.items() if k not in ("CONFIG_FILE", "KUBECONFIG")}
    with log_path.open("wb") as log:
        popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    process = WebhookProcess(
        port=port, ca_file=bundle.ca_cert, log_path=log_path, popen=popen, probe_port=probe_port
    )
    _wait_answering(process)
    return process


def _wait_answering(process: WebhookProcess, timeout: float = 30.0) -> None:
    context = ssl.create_default_context(cafile=str(process.ca_file))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"webhook exited with {process.popen.returncode}:\n{process.log_text()}")
        with contextlib.suppress(httpx.TransportError):
            response = httpx.post(process.url, content=b"{}", verify=context, timeout=2, trust_env=False)
            if response.status_code == 400:
                return
        time.sleep(0.1)
    process.stop()
    raise TimeoutError(f"webhook did not answer within {timeout:.0f}s:\n{process.log_text()}")


def run_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CONFIG_FILE", "KUBECONFIG")}
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)


def register(
    cluster: LocalCluster, name: str, process: WebhookProcess, scope: str, *, timeout_seconds: int = 5
) -> None:
    """Apply the MutatingWebhookConfiguration through `certs webhook-config --apply`."""
    result = run_cli(
        "certs",
        "webhook-config",
        "--name",
        name,
        "--url",
        process.url,
        "--ca-file",
        str(process.ca_file),
        "--timeout-seconds",
        str(timeout_seconds),
        "--namespace-label",
        f"{SCOPE_LABEL}={scope}",
        "--apply",
        "--kubeconfig",
        str(cluster.kubeconfig),
    )
    assert result.returncode == 0, result.stderr


def unregister(cluster: LocalCluster, name: str) -> None:
    cluster.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found", check=False)


def new_scope() -> str:
    return secrets.token_hex(4)


def join_scope(cluster: LocalCluster, namespace: str, scope: str) -> None:
    cluster.kubectl("label", "namespace", namespace, f"{SCOPE_LABEL}={scope}", "--overwrite")


def workload(
    kind: str,
    name: str,
    namespace: str,
    containers: Sequence[tuple[str, str] | tuple[str, str, str]],
    *,
    init: Sequence[tuple[str, str] | tuple[str, str, str]] = (),
    labeled: bool = True,
    pull_secrets: Sequence[str] = (),
) -> dict[str, Any]:
    """A workload manifest; containers are (name, image) or (name, image, imagePullPolicy)."""

    def spec(items: Sequence[tuple[str, str] | tuple[str, str, str]]) -> list[dict[str, Any]]:
        return [
            {"name": c[0], "image": c[1], "imagePullPolicy": c[2] if len(c) == 3 else "Always"}  # type: ignore[misc]
            for c in items
        ]

    pod_spec: dict[str, Any] = {"containers": spec(containers)}
    if init:
        pod_spec["initContainers"] = spec(init)
    if pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in pull_secrets]
    body: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
    }
    if kind in ("Deployment", "StatefulSet"):
        body["replicas"] = 1
    if kind == "StatefulSet":
        body["serviceName"] = name
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labeled:
        metadata["labels"] = {"kube-autorollout/enabled": "true"}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata, "spec": body}


def apply(
    cluster: LocalCluster, manifest: dict[str, Any], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("apply", "-f", "-", *args, input=json.dumps(manifest), check=check)


def get(cluster: LocalCluster, kind: str, namespace: str, name: str) -> dict[str, Any]:
    result = cluster.kubectl("get", kind.lower(), name, "-n", namespace, "-o", "json")
    obj: dict[str, Any] = json.loads(result.stdout)
    return obj


def digests_of(obj: dict[str, Any]) -> dict[str, str]:
    annotations = obj["metadata"].get("annotations") or {}
    return {k.removeprefix(DIGEST_PREFIX): v for k, v in annotations.items() if k.startswith(DIGEST_PREFIX)}


def warnings_in(stderr: str) -> list[str]:
    return [line.removeprefix("Warning: ") for line in stderr.splitlines() if line.startswith("Warning: ")]


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


def wait_active(cluster: LocalCluster, namespace: str, image: str, timeout: float = 30.0) -> None:
    """Until a server-side dry run of a labeled Deployment comes back with a recorded digest."""
    probe = workload("Deployment", "webhook-probe", namespace, [("probe", image)])

    def recorded() -> bool:
        result = apply(cluster, probe, "--dry-run=server", "-o", "json", check=False)
        return result.returncode == 0 and "probe" in digests_of(json.loads(result.stdout))

    wait_for(f"webhook active for namespace {namespace}", recorded, timeout=timeout)


@contextlib.contextmanager
def registered(
    cluster: LocalCluster, process: WebhookProcess, namespaces: Sequence[str], probe_image: str, **kwargs: Any
) -> Iterator[str]:
    """Register `process` for `namespaces` (waits until active); unregistered on exit."""
    scope = new_scope()
    name = f"kar-e2e-{scope}"
    register(cluster, name, process, scope, **kwargs)
    try:
        for namespace in namespaces:
            join_scope(cluster, namespace, scope)
            wait_active(cluster, namespace, probe_image)
        yield name
    finally:
        unregister(cluster, name)
