"""The series the chart's alerts and dashboard query are the ones the product exports: a real
`kube-autorollout reconcile` process runs cycles against the local control plane and registry (a
rollout, an unreachable registry, a delivered notification), and its /metrics has every metric the
PrometheusRule and the dashboard name, of the right type, with the labels they match and group by."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from autorollout import metrics
from tests.e2e.reconciler_helpers import (
    apply,
    events,
    start_cli,
    wait_for,
    wait_replicasets,
    workload,
    write_config,
)
from tests.harness import alerts
from tests.harness.cluster import LocalCluster
from tests.harness.notifyreceiver import NotifyReceiver
from tests.harness.registry import LocalRegistry, free_port
from tests.harness.tarpit import Tarpit

pytestmark = pytest.mark.e2e

_SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def declared_labels() -> dict[str, set[str]]:
    """Label names of every metric autorollout.metrics declares, by family name."""
    return {
        m._name: set(m._labelnames)  # prometheus_client keeps them private
        for m in vars(metrics).values()
        if isinstance(m, MetricWrapperBase)
    }


def test_every_series_the_alerts_and_dashboard_use_is_exported(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=41)
    apply(cluster, workload("Deployment", "web", namespace, [("app", image)], recorded={"app": v1}))
    closed = Tarpit()
    closed.close()  # nothing listens there: the registry is unreachable
    unreachable = f"{closed.host}/{unique_repo}:latest"
    apply(cluster, workload("Deployment", "broken", namespace, [("app", unreachable)]))
    wait_replicasets(cluster, namespace, "web", 1)
    registry.push_image(unique_repo, "latest", seed=42)
    port = free_port()
    with NotifyReceiver() as receiver:
        config = write_config(
            tmp_path / "config.yaml",
            [namespace],
            cronSchedule="* * * * * *",
            webserver={"port": port},
            notifications={
                "sinks": [{"name": "e2e-series", "type": "webhook", "urlEnv": "KAR_E2E_SERIES_URL"}]
            },
        )
        process = start_cli(
            cluster,
            config,
            "reconcile",
            log_path=tmp_path / "reconcile.log",
            KAR_E2E_SERIES_URL=receiver.url(),
        )
        try:
            wait_replicasets(cluster, namespace, "web", 2)
            wait_for("a registry error event", lambda: events(cluster, namespace, "RegistryLookupFailed"))
            wait_for("a delivered notification", lambda: receiver.count >= 2)
            time.sleep(2)  # a cycle or two more: the registry failure counted again, the timestamp set
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5, trust_env=False).text
        finally:
            process.terminate()
            process.wait(timeout=30)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    declared = declared_labels()

    def labels_of(name: str) -> set[str]:
        found = {label for s in families[name].samples for label in s.labels}
        return (found | declared.get(name, set())) - {"le"}

    objects = alerts.rendered()
    expressions = alerts.expressions(objects)
    used: set[str] = set()
    for expr in expressions:
        in_expr: set[str] = set()
        for name, matchers in alerts.selectors(expr):
            base = alerts.family(name)
            assert base in families, f"{name} (in {expr!r}) is not exported"
            kind = families[base].type
            assert any(name == base + suffix for suffix in _SAMPLE_SUFFIXES[kind]), (name, kind)
            missing = matchers - alerts.TARGET_LABELS - labels_of(base)
            assert not missing, f"{name} has no label {missing} (in {expr!r})"
            in_expr |= labels_of(base)
            used.add(base)
        missing = alerts.grouping_labels(expr) - alerts.TARGET_LABELS - in_expr
        assert not missing, f"{expr!r} groups by {missing}, which its series do not have"
    assert len(used) >= 15

    def value(name: str, **labels: str) -> float:
        return sum(
            s.value
            for f in families.values()
            for s in f.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    # The series the alerts fire on were really written by this cycle's outcomes.
    assert value("kube_autorollout_cycles_total", outcome="failed") >= 1
    assert value("kube_autorollout_last_cycle_timestamp_seconds", outcome="failure") > time.time() - 600
    assert value("kube_autorollout_registry_requests_total", registry=closed.host, outcome="error") >= 1
    assert (
        value("kube_autorollout_registry_lookup_failures_total", registry=closed.host, reason="unreachable")
        >= 1
    )
    assert value("kube_autorollout_rollouts_total", kind="Deployment") == 1
    assert value("kube_autorollout_notifications_total", sink="e2e-series", outcome="delivered") >= 2
