"""`kube-autorollout run` with the event receiver: a CI script's generic event after a push rolls the
workload out through the reconciler (cron far away), the patch passes the webhook, and the probe
server reports the receiver ready and the event metrics."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest

from tests.e2e.events_helpers import NEVER
from tests.e2e.test_run import metric_samples, probe, sample
from tests.e2e.webhook_process import apply, digests_of, get, registered, start_webhook, wait_for, workload
from tests.harness.cluster import LocalCluster
from tests.harness.registry import LocalRegistry, free_port

pytestmark = pytest.mark.e2e


def test_run_rolls_out_on_a_generic_event_and_counts_it(
    cluster: LocalCluster, namespace: str, registry: LocalRegistry, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:main"
    first = registry.push_image(unique_repo, "main", seed=1521)
    token = secrets.token_urlsafe(20)
    port = free_port()
    events = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": port,
        "coalesceSeconds": 0.05,
        "sources": {"generic": {"secret": token}},
    }
    process = start_webhook(
        tmp_path / "run",
        cluster,
        command="run",
        cache_ttl=0,
        extra_config={"cronSchedule": NEVER, "reconciler": {"namespaces": [namespace]}, "events": events},
    )
    try:
        wait_for("run ready", lambda: probe(process, "/readyz").status_code == 204)
        with registered(cluster, process, [namespace], image):
            apply(cluster, workload("Deployment", "app", namespace, [("app", image)]))
            assert digests_of(get(cluster, "Deployment", namespace, "app")) == {"app": f"{image}@{first}"}
            second = registry.push_image(unique_repo, "main", seed=1522)
            answer = httpx.post(
                f"http://127.0.0.1:{port}/events/generic",
                json={"image": image},
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
                trust_env=False,
            )
            assert (answer.status_code, answer.text) == (202, "accepted: 1 image(s)\n")
            wait_for(
                "the rollout",
                lambda: digests_of(get(cluster, "Deployment", namespace, "app"))["app"].endswith(second),
                20,
            )
            samples = metric_samples(process)
            assert sample(samples, "kube_autorollout_events_total", source="generic", outcome="accepted") == 1
            assert (
                sample(samples, "kube_autorollout_events_total", source="generic", outcome="rolled_out") == 1
            )
            assert sample(samples, "kube_autorollout_rollouts_total", kind="Deployment") == 1
            assert sample(samples, "kube_autorollout_event_to_patch_seconds_count") == 1
    finally:
        assert process.stop() == 0, process.log_text()[-3000:]
    assert token not in process.log_text()
