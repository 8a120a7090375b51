"""`kube-autorollout run`: webhook, reconciler and probe server in one process, end to end."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.webhook_process import (
    WebhookProcess,
    apply,
    digests_of,
    get,
    registered,
    start_webhook,
    wait_for,
    workload,
)
from tests.harness.cluster import LocalCluster
from tests.harness.node import LocalNode
from tests.harness.podimages import push_runnable
from tests.harness.registry import LocalRegistry, free_port

pytestmark = pytest.mark.e2e


def probe(process: WebhookProcess, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{process.probe_port}{path}", timeout=5, trust_env=False)


def metric_samples(process: WebhookProcess) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = probe(process, "/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_run_records_rolls_out_and_reports_metrics(
    cluster: LocalCluster,
    node_namespace: str,
    node: LocalNode,
    registry: LocalRegistry,
    unique_repo: str,
    tmp_path: Path,
) -> None:
    ns = node_namespace
    node.trust_registry(registry)
    image = f"{registry.host}/{unique_repo}:main"
    first = push_runnable(registry, unique_repo, "main", seed=1)
    process = start_webhook(
        tmp_path / "run",
        cluster,
        command="run",
        cache_ttl=0,
        extra_config={"cronSchedule": "* * * * * *", "reconciler": {"namespaces": [ns]}},
    )
    try:
        wait_for("run ready", lambda: probe(process, "/readyz").status_code == 204)
        for path in ("/healthz", "/health/live", "/health/ready"):
            assert probe(process, path).status_code == 204, path
        with registered(cluster, process, [ns], image):
            apply(cluster, workload("Deployment", "app", ns, [("app", image)]))
            assert digests_of(get(cluster, "Deployment", ns, "app")) == {"app": f"{image}@{first}"}

            second = push_runnable(registry, unique_repo, "main", seed=2)
            wait_for(
                "the rollout",
                lambda: digests_of(get(cluster, "Deployment", ns, "app"))["app"].endswith(second),
            )
            cluster.kubectl("rollout", "status", "-n", ns, "deployment/app", "--timeout=120s", timeout=150)
            template = get(cluster, "Deployment", ns, "app")["spec"]["template"]
            assert "kube-autorollout/restartedAt" in template["metadata"]["annotations"]

            samples = metric_samples(process)
            assert sample(samples, "kube_autorollout_rollouts_total", kind="Deployment") == 1
            assert sample(samples, "kube_autorollout_workloads_in_scope") == 1
            assert sample(samples, "kube_autorollout_cycles_total", outcome="ok") >= 1
            assert sample(samples, "kube_autorollout_admission_requests_total", outcome="patched") >= 1
            assert sample(samples, "kube_autorollout_admission_duration_seconds_count") >= 1
            heads = sample(
                samples,
                "kube_autorollout_registry_requests_total",
                registry=registry.host,
                method="HEAD",
                outcome="200",
            )
            assert heads >= 2  # the webhook's lookup at apply and the reconciler's after the push
            assert sample(samples, "kube_autorollout_digest_cache_total", result="miss") >= 2
            assert (
                sample(samples, "kube_autorollout_registry_lookup_seconds_count", registry=registry.host) >= 2
            )
    finally:
        assert process.stop() == 0, process.log_text()[-3000:]


def test_alive_but_not_ready_without_the_kubernetes_api(cluster: LocalCluster, tmp_path: Path) -> None:
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    kubeconfig["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"  # nothing listens
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(kubeconfig))
    process = start_webhook(tmp_path / "run", None, command="run", kubeconfig=dead)
    try:
        assert probe(process, "/healthz").status_code == 204
        ready = probe(process, "/readyz")
        assert ready.status_code == 503
        reasons = ready.text.splitlines()
        assert any(line.startswith("kubernetes: Kubernetes API did not answer") for line in reasons), reasons
        assert any(line.startswith("reconciler: ") for line in reasons), reasons
        assert not any(line.startswith("webhook: ") for line in reasons), reasons  # it does serve
    finally:
        assert process.stop() == 0, process.log_text()[-3000:]
