"""Upstream's e2e steps on the real node: a real kubelet pulls through a pull secret, the webhook
(a real process behind a MutatingWebhookConfiguration) records the digest, the reconciler (a real
process on its cron schedule) rolls out after a push, and the new pods' imageID, as the kubelet
reports it, is the pushed digest."""

from __future__ import annotations

import base64
import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.real_node_helpers import (
    ROLLOUT_TIMEOUT,
    SCHEDULE,
    create_pull_secret,
    deployment,
    generation,
    roll_and_check,
    running_pods,
)
from tests.e2e.reconciler_helpers import DIGEST_PREFIX, apply, list_items, start_cli, wait_for, write_config
from tests.e2e.webhook_process import WebhookProcess, registered
from tests.harness.cluster import LocalCluster
from tests.harness.node import LocalNode
from tests.harness.podimages import push_shell_image, push_shell_index
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def reconciler_running(
    cluster: LocalCluster, namespace: str, workdir: Path, **config_keys: Any
) -> Iterator[Path]:
    """`kube-autorollout reconcile` as a long-running process on SCHEDULE; yields its log path."""
    config = write_config(workdir / "config.yaml", [namespace], cronSchedule=SCHEDULE, **config_keys)
    log_path = workdir / "reconcile.log"
    process = start_cli(cluster, config, "reconcile", log_path=log_path)
    try:
        yield log_path
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def probe_image(registry: LocalRegistry, unique_repo: str) -> str:
    """An image of an anonymous registry for the webhook's activation probe."""
    registry.push_image(f"{unique_repo}-probe", "latest", seed=1)
    return f"{registry.host}/{unique_repo}-probe:latest"


def test_pull_secret_deployment_rolls_out_once_on_push(
    cluster: LocalCluster,
    node: LocalNode,
    node_registry_basic: LocalRegistry,
    registry_plain: LocalRegistry,
    node_namespace: str,
    webhook: WebhookProcess,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    ns, registry = node_namespace, node_registry_basic
    create_pull_secret(cluster, ns, registry)
    image = f"{registry.host}/{unique_repo}:latest"
    pusher = registry.pusher()
    try:
        first = push_shell_image(pusher, unique_repo, "latest", seed=11)
        with registered(cluster, webhook, [ns], probe_image(registry_plain, unique_repo)):
            apply(cluster, deployment("shop", ns, image))
            second, took = roll_and_check(
                cluster,
                ns,
                image,
                lambda: push_shell_image(pusher, unique_repo, "latest", seed=12),
                first,
                reconciler_running(cluster, ns, tmp_path),
            )
    finally:
        pusher.close()
    assert second != first
    # The password went from the pull secret to the kubelet and to our lookups, and into no log.
    assert registry.password is not None
    logs = webhook.log_text() + (tmp_path / "reconcile.log").read_text() + node.log_tail("kubelet", 10**6)
    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    assert registry.password not in logs
    assert auth not in logs
    print(f"push -> new pods running on the real node: {took:.1f}s")


def test_image_index_recorded_digest_is_what_the_kubelet_reports(
    cluster: LocalCluster,
    node: LocalNode,
    node_registry_basic: LocalRegistry,
    registry_plain: LocalRegistry,
    node_namespace: str,
    webhook: WebhookProcess,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    ns, registry = node_namespace, node_registry_basic
    create_pull_secret(cluster, ns, registry)
    image = f"{registry.host}/{unique_repo}:latest"
    pusher = registry.pusher()
    try:
        first, by_platform = push_shell_index(pusher, unique_repo, "latest", seed=21)
        with registered(cluster, webhook, [ns], probe_image(registry_plain, unique_repo)):
            apply(cluster, deployment("shop", ns, image))
            second, _ = roll_and_check(
                cluster,
                ns,
                image,
                lambda: push_shell_index(pusher, unique_repo, "latest", seed=22)[0],
                first,
                reconciler_running(cluster, ns, tmp_path),
            )
    finally:
        pusher.close()
    # The index digest, not the amd64 manifest the node ran.
    assert first not in by_platform.values()
    assert second != first


def test_new_image_that_exits_nonzero_crash_loops(
    cluster: LocalCluster,
    node: LocalNode,
    node_registry_tls: LocalRegistry,
    node_namespace: str,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    ns, registry = node_namespace, node_registry_tls  # pulled over TLS with the test CA
    image = f"{registry.host}/{unique_repo}:latest"
    pusher = registry.pusher()
    try:
        first = push_shell_image(pusher, unique_repo, "latest", seed=31)
        manifest = deployment("shop", ns, image, replicas=1)
        manifest["metadata"]["annotations"] = {f"{DIGEST_PREFIX}app": f"{image}@{first}"}
        del manifest["spec"]["template"]["spec"]["imagePullSecrets"]
        apply(cluster, manifest)
        wait_for("pod running", lambda: running_pods(cluster, ns, "shop", 1), ROLLOUT_TIMEOUT)
        tls = {"caCertificatePaths": [str(registry.ca_file)]}
        with reconciler_running(cluster, ns, tmp_path, tls=tls):
            push_shell_image(pusher, unique_repo, "latest", "echo crashing; exit 3", seed=32)
            wait_for("rollout", lambda: generation(cluster, ns, "shop") == 2, ROLLOUT_TIMEOUT)
    finally:
        pusher.close()

    def crash_looping() -> dict[str, Any] | None:
        for pod in list_items(cluster, "pods", ns, "app=shop"):
            for status in pod["status"].get("containerStatuses") or []:
                waiting = status.get("state", {}).get("waiting", {})
                if status.get("restartCount", 0) > 0 and waiting.get("reason") == "CrashLoopBackOff":
                    return dict(status)
        return None

    status = wait_for("CrashLoopBackOff", crash_looping, ROLLOUT_TIMEOUT, interval=1.0)
    assert status["lastState"]["terminated"]["exitCode"] == 3
