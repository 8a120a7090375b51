"""Push-triggered rollouts end to end: Debian's docker-registry notifies the receiver of a
`reconcile` process (cron far in the future, so only the event can roll), which looks the tag up
itself and rolls the workload once; a multi-platform index rolls once; a forged event costs one
HEAD and changes nothing; two replicas receiving every delivery twice roll out once per push."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from autorollout.kube import workload_path
from tests.e2e.events_helpers import NEVER, events_section, notification_endpoint, notifying_registry
from tests.e2e.reconciler_helpers import (
    DIGEST_PREFIX,
    apply,
    events,
    log_messages,
    namespaced_kubeconfig,
    run_cli,
    start_cli,
    wait_for,
    wait_replicasets,
    workload,
    write_config,
)
from tests.harness.cluster import LocalCluster
from tests.harness.registry import free_port

pytestmark = pytest.mark.e2e


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(timeout=20)


def _recorded(cluster: LocalCluster, namespace: str, name: str) -> str:
    obj = cluster.api_get(workload_path("Deployment", namespace, name))
    assert obj is not None
    return str(obj["metadata"]["annotations"].get(f"{DIGEST_PREFIX}app", ""))


def _samples(text: str) -> dict[str, float]:
    """Prometheus text as {"name{labels}": value}."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def _receiver_up(log: Path) -> bool:
    return any(m.get("msg") == "event receiver listening" for m in log_messages(log))


def _started(log: Path) -> bool:
    return any(m.get("msg") == "reconciler started" for m in log_messages(log))


def test_a_push_notified_by_the_registry_rolls_out_once_with_cron_far_away(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    token = secrets.token_urlsafe(24)
    secret_file = tmp_path / "events-token"
    secret_file.write_text(token + "\n")  # as a mounted Secret often is
    port = free_port()
    with notifying_registry(tmp_path / "registry", [notification_endpoint("us", port, token)]) as registry:
        repo = "events/app"
        image = f"{registry.host}/{repo}:latest"
        v1 = registry.push_image(repo, "latest", seed=1501)
        apply(cluster, workload("Deployment", "pushed", namespace, [("app", image)], recorded={"app": v1}))
        wait_replicasets(cluster, namespace, "pushed", 1)
        generic = secrets.token_urlsafe(16)
        metrics_port = free_port()
        config = write_config(
            tmp_path / "config.yaml",
            [namespace],
            cronSchedule=NEVER,
            webserver={"port": metrics_port},
            events=events_section(port, secret_file, generic={"secret": generic}),
        )
        log = tmp_path / "reconcile.log"
        process = start_cli(cluster, config, "reconcile", log_path=log)
        try:
            wait_for("the receiver and the cache", lambda: _receiver_up(log) and _started(log), 30)

            v2 = registry.push_image(repo, "latest", seed=1502)
            pushed = time.monotonic()
            wait_for(
                "the rollout", lambda: _recorded(cluster, namespace, "pushed") == f"{image}@{v2}", 20, 0.05
            )
            print(
                f"push -> recorded digest through a registry notification: {time.monotonic() - pushed:.2f}s"
            )
            wait_replicasets(cluster, namespace, "pushed", 2)

            # A multi-platform index: the registry reports each platform manifest (by digest, no tag)
            # and the index under its tag; the workload rolls once, to the index digest.
            v3 = registry.push_image(repo, "latest", platforms=["linux/amd64", "linux/arm64"], seed=1503)
            wait_for(
                "the index rollout", lambda: _recorded(cluster, namespace, "pushed") == f"{image}@{v3}", 20
            )
            wait_replicasets(cluster, namespace, "pushed", 3)

            # A forged event (valid credential, nothing moved): one HEAD, no rollout.
            heads_before = registry.request_count("HEAD", f"/v2/{repo}/manifests/latest")
            answer = httpx.post(
                f"http://127.0.0.1:{port}/events/generic",
                json={"image": image, "digest": "sha256:" + "0" * 64},
                headers={"Authorization": f"Bearer {generic}"},
                timeout=5,
            )
            assert answer.status_code == 202, answer.text
            wait_for(
                "the event's lookup",
                lambda: registry.request_count("HEAD", f"/v2/{repo}/manifests/latest") == heads_before + 1,
                10,
            )
            time.sleep(1.0)
            assert registry.request_count("HEAD", f"/v2/{repo}/manifests/latest") == heads_before + 1
            # A wrong token: refused, no lookup at all.
            refused = httpx.post(
                f"http://127.0.0.1:{port}/events/distribution",
                content=b'{"events": []}',
                headers={"Authorization": "Bearer not-the-token"},
                timeout=5,
            )
            assert refused.status_code == 401
            assert refused.text == "unauthenticated: wrong credential\n"

            rollouts = events(cluster, namespace, "RolloutTriggered")
            assert len(rollouts) == 2, [e["message"] for e in rollouts]  # v2 and v3, once each
            assert not any(
                "cycle finished" in m.get("msg", "") and m.get("workloads", 0) > 1 for m in log_messages(log)
            )

            scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            samples = _samples(scraped)
            assert samples['kube_autorollout_events_total{outcome="rolled_out",source="distribution"}'] >= 2
            assert samples['kube_autorollout_events_total{outcome="accepted",source="generic"}'] == 1
            assert (
                samples['kube_autorollout_events_total{outcome="unauthenticated",source="distribution"}'] == 1
            )
            assert samples["kube_autorollout_event_to_patch_seconds_count"] >= 2
            assert token not in scraped
            status = run_cli(cluster, config, "status")
            assert status.returncode == 0, status.stderr
            assert f"{registry.host}/{repo}:latest" in status.stdout
            assert "last registry event" in status.stdout
        finally:
            assert _stop(process) == 0
        text = log.read_text()
        assert token not in text
        assert generic not in text
        assert any(m.get("msg") == "event accepted" for m in log_messages(log)), text[-2000:]


def test_two_replicas_receiving_every_delivery_twice_roll_out_once_per_push(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    token = secrets.token_urlsafe(24)
    secret_file = tmp_path / "events-token"
    secret_file.write_text(token)
    ports = {"a": free_port(), "b": free_port()}
    endpoints = [notification_endpoint(name, port, token) for name, port in ports.items()]
    with notifying_registry(tmp_path / "registry", endpoints) as registry:
        repo = "events/ha"
        image = f"{registry.host}/{repo}:latest"
        v1 = registry.push_image(repo, "latest", seed=1511)
        apply(cluster, workload("Deployment", "ha", namespace, [("app", image)], recorded={"app": v1}))
        wait_replicasets(cluster, namespace, "ha", 1)
        kubeconfig = namespaced_kubeconfig(cluster, namespace, tmp_path / "kubeconfig")
        lease = f"kar-{secrets.token_hex(3)}"
        logs = {name: tmp_path / f"{name}.log" for name in ports}
        processes = {}
        try:
            for name, port in ports.items():
                config = write_config(
                    tmp_path / f"config-{name}.yaml",
                    [namespace],
                    cronSchedule=NEVER,
                    leaderElection={
                        "enabled": True,
                        "leaseName": lease,
                        "leaseDurationSeconds": 4,
                        "renewSeconds": 1,
                    },
                    events=events_section(port, secret_file),
                )
                processes[name] = start_cli(
                    cluster,
                    config,
                    "reconcile",
                    log_path=logs[name],
                    kubeconfig=kubeconfig,
                    POD_NAME=f"replica-{name}",
                )
                wait_for(f"{name}'s receiver", lambda log=logs[name]: _receiver_up(log) and _started(log), 30)
            wait_for(
                "a standby",
                lambda: any(
                    "standing by" in m.get("msg", "") for log in logs.values() for m in log_messages(log)
                ),
            )
            pushes = []
            for i in range(3):
                digest = registry.push_image(repo, "latest", seed=1512 + i)
                pushes.append(digest)
                wait_for(
                    f"rollout {i + 1}",
                    lambda d=digest: _recorded(cluster, namespace, "ha") == f"{image}@{d}",
                    20,
                )
                # The same envelope delivered again to both replicas (a retry, a replay).
                envelope = {
                    "events": [
                        {
                            "action": "push",
                            "target": {"repository": repo, "tag": "latest", "digest": digest},
                            "request": {"host": registry.host},
                        }
                    ]
                }
                answers = []
                for port in ports.values():
                    replay = httpx.post(
                        f"http://127.0.0.1:{port}/events/distribution",
                        content=json.dumps(envelope).encode(),
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=5,
                    )
                    answers.append(replay.status_code)
                # The leader takes the duplicate (coalesced, then a no-op); the standby asks for a retry.
                assert sorted(answers) == [202, 503], answers
            time.sleep(2.0)  # room for a late duplicate to do harm, if it could
            rollouts = events(cluster, namespace, "RolloutTriggered")
            assert len(rollouts) == len(pushes), [e["message"] for e in rollouts]
            assert {d for d in pushes if any(d in e["message"] for e in rollouts)} == set(pushes)
            assert len({e["reportingInstance"].split("_")[0] for e in rollouts}) == 1  # the leader's only
            wait_replicasets(cluster, namespace, "ha", 1 + len(pushes))
            refused = [
                m for log in logs.values() for m in log_messages(log) if m.get("msg") == "event accepted"
            ]
            assert refused, "the leader accepted the deliveries"
        finally:
            for process in processes.values():
                assert _stop(process) == 0
        for log in logs.values():
            assert token not in log.read_text()
