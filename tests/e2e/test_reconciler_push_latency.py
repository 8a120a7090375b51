"""A moved tag is seen by the next scheduled cycle, however long the digest cache keeps entries: the
`reconcile` process on a 3-second schedule with a 60-second cache rolls out within one interval of
each push (the cache may serve the webhook and spare lookups within a cycle, never hide a move)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from autorollout.kube import workload_path
from tests.e2e.reconciler_helpers import (
    DIGEST_PREFIX,
    RESTARTED_AT,
    apply,
    events,
    log_messages,
    replicaset_count,
    run_cli,
    start_cli,
    wait_for,
    workload,
    write_config,
)
from tests.e2e.webhook_process import get
from tests.harness.cluster import LocalCluster
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e

INTERVAL = 3.0
# A cycle here is one HEAD and one PATCH; the rest is room for a machine shared with other work.
SLACK = 3.0
PUSHES = 3


def _cycles(log: Path) -> int:
    return sum(m.get("msg", "").startswith("cycle finished") for m in log_messages(log))


def test_push_rolls_out_within_one_schedule_interval_despite_a_long_cache(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    digest = registry.push_image(unique_repo, "latest", seed=201)
    apply(cluster, workload("Deployment", "hot", namespace, [("app", image)], recorded={"app": digest}))
    config = write_config(
        tmp_path / "config.yaml", [namespace], cronSchedule="*/3 * * * * *", digestCacheTtlSeconds=60
    )
    path = workload_path("Deployment", namespace, "hot")
    log = tmp_path / "reconcile.log"
    process = start_cli(cluster, config, "reconcile", log_path=log)
    latencies: list[float] = []
    try:
        # Two cycles have cached the current digest (for 60 s) before the first push.
        wait_for("two cycles", lambda: _cycles(log) >= 2, 30)
        for i in range(PUSHES):
            before = get(cluster, "Deployment", namespace, "hot")["spec"]["template"]["metadata"]
            restarted = (before.get("annotations") or {}).get(RESTARTED_AT)
            digest = registry.push_image(unique_repo, "latest", seed=202 + i)
            pushed = time.monotonic()

            def rolled(expected: str = digest, old: str | None = restarted) -> bool:
                obj = cluster.api_get(path)  # no kubectl process per poll: the timing stays fine-grained
                assert obj is not None
                now = (obj["spec"]["template"]["metadata"].get("annotations") or {}).get(RESTARTED_AT)
                recorded = obj["metadata"]["annotations"][f"{DIGEST_PREFIX}app"]
                return now != old and recorded == f"{image}@{expected}"

            wait_for(f"rollout after push {i + 1}", rolled, 30, interval=0.1)
            latencies.append(time.monotonic() - pushed)
            time.sleep(1.0 + (i * 0.9) % INTERVAL)  # pushes land at different points of the interval

        assert process.poll() is None, log.read_text()[-2000:]
        status = run_cli(cluster, config, "status")  # a fresh process agrees with the running one
        # The table, then (after a blank line) the health watch's line for the rollout it follows.
        table, _, health = status.stdout.partition("\n\n")
        [row] = table.splitlines()[1:]
        assert health.startswith("watching"), status.stdout
        assert row.split()[-1] == "up-to-date", row
    finally:
        process.terminate()
        process.wait(timeout=20)

    print(
        f"push -> rollout with a {INTERVAL:.0f}s schedule and a 60s cache: "
        + ", ".join(f"{t:.2f}s" for t in latencies)
        + f" (max {max(latencies):.2f}s)"
    )
    assert max(latencies) <= INTERVAL + SLACK, latencies
    assert replicaset_count(cluster, namespace, "hot") >= 1
    assert len(events(cluster, namespace, "RolloutTriggered")) == PUSHES  # exactly one per push
