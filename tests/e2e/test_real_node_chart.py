"""Upstream's own e2e test, ours: the product's real image (built from the Dockerfile) installed by its
own chart, pulled as an OCI artifact from the local registry with `helm install --wait`, running as a
pod on the real node. The API server calls its webhook through the Service (at the pod's endpoint),
the pod looks up the workloads' registry itself and rolls a Deployment out after a push; `helm
upgrade` and `helm uninstall` leave nothing that would block applies.

Values as upstream's CI sets them: `config.cronSchedule` and the image repository and tag. One more
is needed here: the workloads' registry has a certificate from a test CA, which the pod must trust
(`config.tls.customCaCertificates`, from a Secret)."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import pytest

from tests.e2e.real_node_helpers import (
    SCHEDULE,
    create_pull_secret,
    deployment,
    roll_and_check,
)
from tests.e2e.reconciler_helpers import DIGEST_PREFIX, apply, list_items, wait_for, workload
from tests.e2e.webhook_process import get
from tests.harness.chart_oci import ChartArtifact, push_chart
from tests.harness.cluster import LocalCluster
from tests.harness.helm import run_helm
from tests.harness.image import product_image
from tests.harness.node import LocalNode
from tests.harness.podimages import push_shell_image
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e

RELEASE = "kar"
CA_SECRET = "workload-registry-ca"
CA_MOUNT = "/etc/kube-autorollout/ca/workload-registry.crt"
INSTALL_TIMEOUT = "4m"


@pytest.fixture(scope="module")
def chart(
    node: LocalNode, registry_tls: LocalRegistry, tmp_path_factory: pytest.TempPathFactory
) -> ChartArtifact:
    """The chart pushed as an OCI artifact to the loopback TLS registry (helm and containerd run on
    the host), beside the product image the chart will run."""
    node.trust_registry(registry_tls)
    return push_chart(registry_tls, tmp_path_factory.mktemp("chart"))


@pytest.fixture(scope="module")
def image(registry_tls: LocalRegistry) -> str:
    """The product image, built from the Dockerfile (cached by its inputs) and pushed."""
    return product_image(registry_tls, "kube-autorollout")


def install_values(image: str) -> list[str]:
    repository, _, tag = image.rpartition(":")
    return [
        "--set-string", f"config.cronSchedule={SCHEDULE}",
        "--set-string", f"image.repository={repository}",
        "--set-string", f"image.tag={tag}",
        "--set", "config.tls.customCaCertificates.enabled=true",
        "--set-string", f"config.tls.customCaCertificates.secrets[0].name={CA_SECRET}",
        "--set-string", "config.tls.customCaCertificates.secrets[0].subPath=ca.crt",
        "--set-string", f"config.tls.customCaCertificates.secrets[0].mountPath={CA_MOUNT}",
    ]  # fmt: skip


def product_pods(cluster: LocalCluster, ns: str) -> list[dict[str, Any]]:
    return list_items(cluster, "pods", ns, f"app.kubernetes.io/instance={RELEASE}")


def ready_product_pod(cluster: LocalCluster, ns: str) -> dict[str, Any] | None:
    pods = [p for p in product_pods(cluster, ns) if not p["metadata"].get("deletionTimestamp")]
    if len(pods) != 1:
        return None
    conditions = pods[0]["status"].get("conditions") or []
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return pods[0] if ready else None


def exec_python(cluster: LocalCluster, ns: str, pod: str, code: str) -> str:
    """Run Python inside the product's container (the image has python, no shell tools)."""
    result = cluster.kubectl("exec", "-n", ns, pod, "--", "python", "-c", code, timeout=60)
    return result.stdout.strip()


def webhook_configurations(cluster: LocalCluster) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        cluster.kubectl("get", "mutatingwebhookconfigurations", "-o", "json").stdout
    )["items"]
    return [
        i for i in items if (i["metadata"].get("labels") or {}).get("app.kubernetes.io/instance") == RELEASE
    ]


def test_upstream_e2e_with_the_real_image_and_chart(
    cluster: LocalCluster,
    node: LocalNode,
    node_namespace: str,
    bridge_registry_tls_basic: LocalRegistry,
    chart: ChartArtifact,
    image: str,
    unique_repo: str,
) -> None:
    ns, workload_registry = node_namespace, bridge_registry_tls_basic
    assert workload_registry.ca_file is not None
    cluster.kubectl(
        "create", "secret", "generic", CA_SECRET, "-n", ns, f"--from-file=ca.crt={workload_registry.ca_file}"
    )
    create_pull_secret(cluster, ns, workload_registry)
    started = time.monotonic()
    chart.helm(
        "install", RELEASE, chart.reference, "--version", chart.version, "-n", ns,
        "--kubeconfig", str(cluster.kubeconfig), "--wait", "--timeout", INSTALL_TIMEOUT,
        *install_values(image), timeout=300,
    )  # fmt: skip
    install_seconds = time.monotonic() - started

    # 1. Ready, non-root, read-only root file system: asked of the running process, not of the spec.
    pod = wait_for("the product pod Ready", lambda: ready_product_pod(cluster, ns), 60)
    name = pod["metadata"]["name"]
    assert exec_python(cluster, ns, name, "import os; print(os.getuid(), os.getgid())") == "65532 65532"
    probe = "import errno\ntry:\n open('/probe', 'w')\nexcept OSError as e:\n print(errno.errorcode[e.errno])"
    assert exec_python(cluster, ns, name, probe) == "EROFS"
    [config] = webhook_configurations(cluster)
    assert {"service"} == set(config["webhooks"][0]["clientConfig"]) - {"caBundle"}

    # The webhook, reached by the API server through the Service, records the digest at apply time.
    image_ref = f"{workload_registry.host}/{unique_repo}:latest"
    pusher = workload_registry.pusher()
    try:
        # Seeds no other real-node test uses: the kubelet reports an image's first known repo digest as the
        # imageID, so identical content pulled by an earlier test under another name would be reported.
        first = push_shell_image(pusher, unique_repo, "latest", seed=1041)
        apply(cluster, deployment("shop", ns, image_ref))
        recorded = get(cluster, "Deployment", ns, "shop")["metadata"]["annotations"][f"{DIGEST_PREFIX}app"]
        assert recorded == f"{image_ref}@{first}"

        # 2.-3. The pods pull through the secret; the product, in its pod, rolls out once after a push.
        second, took = roll_and_check(
            cluster,
            ns,
            image_ref,
            lambda: push_shell_image(pusher, unique_repo, "latest", seed=1042),
            first,
            contextlib.nullcontext(),
        )
    finally:
        pusher.close()
    assert second != first

    logs = cluster.kubectl("logs", "-n", ns, name).stdout
    assert "roll out: tag moved" in logs, logs[-2000:]  # the pod in the cluster did it

    # 6. helm upgrade with changed values: a new pod with the new configuration becomes Ready.
    chart.helm(
        "upgrade", RELEASE, chart.reference, "--version", chart.version, "-n", ns,
        "--kubeconfig", str(cluster.kubeconfig), "--wait", "--timeout", INSTALL_TIMEOUT,
        *install_values(image), "--set-string", "config.logLevel=debug", timeout=300,
    )  # fmt: skip
    upgraded = wait_for("the upgraded pod Ready", lambda: ready_product_pod(cluster, ns), 60)
    assert upgraded["metadata"]["name"] != name
    config_maps = list_items(cluster, "configmaps", ns, f"app.kubernetes.io/instance={RELEASE}")
    assert any("logLevel: debug" in "".join(c.get("data", {}).values()) for c in config_maps)

    # helm uninstall leaves no webhook configuration behind, and applies still work.
    uninstalled = run_helm(
        "uninstall", RELEASE, "-n", ns, "--kubeconfig", str(cluster.kubeconfig), "--wait",
        env=chart.env, timeout=300,
    )  # fmt: skip
    chart.transcript.extend([uninstalled.stdout, uninstalled.stderr])
    assert webhook_configurations(cluster) == []
    selector = f"app.kubernetes.io/instance={RELEASE}"
    kinds = "deployments,services,configmaps,secrets,serviceaccounts,roles,rolebindings,leases"
    left = cluster.kubectl("get", kinds, "-n", ns, "-l", selector, "-o", "name").stdout.split()
    left += cluster.kubectl(
        "get", "clusterroles,clusterrolebindings", "-l", selector, "-o", "name"
    ).stdout.split()
    assert left == []
    wait_for("the product pod gone", lambda: not product_pods(cluster, ns), 60)
    apply(cluster, workload("Deployment", "after", ns, [("app", image_ref)]))
    assert f"{DIGEST_PREFIX}app" not in (
        get(cluster, "Deployment", ns, "after")["metadata"].get("annotations") or {}
    )
    assert workload_registry.password is not None
    assert workload_registry.password not in "".join(chart.transcript) + logs
    print(f"helm install --wait: {install_seconds:.1f}s; push -> new pods running: {took:.1f}s")
