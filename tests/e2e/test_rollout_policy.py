"""The rollout policy end to end against the real control plane and registry: settle and cooldown
survive a SIGKILLed reconciler (their state is on the workload), a window holds a move until it
opens, and the in-flight cap rolls Deployments one at a time, in name order, as the simulated node
makes each available."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autorollout.annotations import parse_seen, parse_timestamp
from tests.e2e.reconciler_helpers import (
    RESTARTED_AT,
    apply,
    events,
    list_items,
    log_messages,
    replicaset_count,
    run_cli,
    start_cli,
    wait_for,
    wait_replicasets,
    workload,
    write_config,
)
from tests.harness.cluster import LocalCluster
from tests.harness.registry import LocalRegistry

pytestmark = pytest.mark.e2e

SEEN = "seen.kube-autorollout/app"


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=20)


def _deployment(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    found = [d for d in list_items(cluster, "deployments", namespace) if d["metadata"]["name"] == name]
    assert found, name
    return found[0]


def _annotations(cluster: LocalCluster, namespace: str, name: str) -> dict[str, str]:
    annotations: dict[str, str] = _deployment(cluster, namespace, name)["metadata"].get("annotations") or {}
    return annotations


def _restarted_at(cluster: LocalCluster, namespace: str, name: str) -> datetime | None:
    template = _deployment(cluster, namespace, name)["spec"]["template"]["metadata"]
    return parse_timestamp((template.get("annotations") or {}).get(RESTARTED_AT))


def _with_policy(manifest: dict[str, Any], **policy: str) -> dict[str, Any]:
    manifest["metadata"]["annotations"].update({f"policy.kube-autorollout/{k}": v for k, v in policy.items()})
    return manifest


def _cycles(log: Path) -> int:
    return sum("cycle finished" in m["msg"] for m in log_messages(log))


def test_settle_survives_a_sigkill_and_rolls_out_once_when_the_first_sighting_is_old_enough(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=161)
    apply(
        cluster,
        _with_policy(
            workload("Deployment", "app", namespace, [("app", image)], recorded={"app": v1}), settle="20s"
        ),
    )
    wait_replicasets(cluster, namespace, "app", 1)
    v2 = registry.push_image(unique_repo, "latest", seed=162)
    config = write_config(tmp_path / "config.yaml", [namespace], cronSchedule="* * * * * *")

    first = start_cli(cluster, config, "reconcile", log_path=tmp_path / "first.log")
    try:
        mark = wait_for(
            "the settle mark", lambda: _annotations(cluster, namespace, "app").get(SEEN), timeout=60
        )
    finally:
        _kill(first)
    seen = parse_seen(mark)
    assert seen is not None
    assert seen[0] == v2
    assert replicaset_count(cluster, namespace, "app") == 1  # settling: no rollout yet

    # While no reconciler runs, `status` says why the move is pending, from the workload alone.
    shown = run_cli(cluster, config, "status")
    assert shown.returncode == 0, shown.stderr
    assert "pending (settling for " in shown.stdout, shown.stdout

    time.sleep(max(0.0, (seen[1] + timedelta(seconds=8) - datetime.now(UTC)).total_seconds()))
    restarted = datetime.now(UTC)
    second = start_cli(cluster, config, "reconcile", log_path=tmp_path / "second.log")
    try:
        wait_replicasets(cluster, namespace, "app", 2)
        done = _cycles(tmp_path / "second.log")
        wait_for("three more cycles", lambda: _cycles(tmp_path / "second.log") >= done + 3, timeout=60)
    finally:
        _stop(second)
    rolled = _restarted_at(cluster, namespace, "app")
    assert rolled is not None
    assert rolled >= seen[1] + timedelta(seconds=20), "rolled before the tag had settled"
    # Settle counted from the first sighting, before the kill: not from zero after the restart
    # (that would be 20 s after the restarted process's first cycle at the earliest).
    assert rolled < restarted + timedelta(seconds=20), (rolled, restarted)
    annotations = _annotations(cluster, namespace, "app")
    assert SEEN not in annotations  # the rollout cleared the mark
    assert annotations["digest.kube-autorollout/app"] == f"{image}@{v2}"
    assert replicaset_count(cluster, namespace, "app") == 2
    assert len(events(cluster, namespace, "RolloutTriggered")) == 1


def test_cooldown_survives_a_sigkill_and_the_next_move_rolls_out_when_it_ends(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=163)
    apply(
        cluster,
        _with_policy(
            workload("Deployment", "app", namespace, [("app", image)], recorded={"app": v1}), cooldown="20s"
        ),
    )
    wait_replicasets(cluster, namespace, "app", 1)
    registry.push_image(unique_repo, "latest", seed=164)
    config = write_config(tmp_path / "config.yaml", [namespace], cronSchedule="* * * * * *")

    first = start_cli(cluster, config, "reconcile", log_path=tmp_path / "first.log")
    try:
        wait_replicasets(cluster, namespace, "app", 2)  # no earlier rollout: no cooldown yet
        v3 = registry.push_image(unique_repo, "latest", seed=165)
        done = _cycles(tmp_path / "first.log")
        wait_for("two cycles after the push", lambda: _cycles(tmp_path / "first.log") >= done + 2, timeout=60)
    finally:
        _kill(first)
    first_rollout = _restarted_at(cluster, namespace, "app")
    assert first_rollout is not None
    assert replicaset_count(cluster, namespace, "app") == 2  # cooling down
    pending = [
        m for m in log_messages(tmp_path / "first.log") if m["msg"].startswith("rollout pending: cooldown")
    ]
    assert pending, "the first process said why the move waits"

    second = start_cli(cluster, config, "reconcile", log_path=tmp_path / "second.log")
    try:
        wait_replicasets(cluster, namespace, "app", 3)
        done = _cycles(tmp_path / "second.log")
        wait_for("three more cycles", lambda: _cycles(tmp_path / "second.log") >= done + 3, timeout=60)
    finally:
        _stop(second)
    second_rollout = _restarted_at(cluster, namespace, "app")
    assert second_rollout is not None
    assert second_rollout - first_rollout >= timedelta(seconds=20), (first_rollout, second_rollout)
    assert _annotations(cluster, namespace, "app")["digest.kube-autorollout/app"] == f"{image}@{v3}"
    assert replicaset_count(cluster, namespace, "app") == 3
    assert len(events(cluster, namespace, "RolloutTriggered")) == 2


def test_a_window_holds_the_move_until_it_opens_and_an_invalid_value_gets_one_warning_event(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=166)
    now = datetime.now(UTC)
    opens = (now + timedelta(minutes=2 if now.second > 40 else 1)).replace(second=0, microsecond=0)
    window = f"{opens.minute} {opens.hour} * * * 1m UTC"
    manifest = _with_policy(
        workload("Deployment", "app", namespace, [("app", image)], recorded={"app": v1}),
        windows=window,
        cooldown="a little",  # invalid: the default (0) applies, and one Warning Event says so
    )
    apply(cluster, manifest)
    wait_replicasets(cluster, namespace, "app", 1)
    registry.push_image(unique_repo, "latest", seed=167)
    config = write_config(tmp_path / "config.yaml", [namespace], cronSchedule="* * * * * *")
    process = start_cli(cluster, config, "reconcile", log_path=tmp_path / "reconcile.log")
    try:
        wait_for(
            "the rollout at the window's opening",
            lambda: replicaset_count(cluster, namespace, "app") == 2,
            timeout=150,
            interval=0.5,
        )
        done = _cycles(tmp_path / "reconcile.log")
        wait_for("three more cycles", lambda: _cycles(tmp_path / "reconcile.log") >= done + 3, timeout=60)
    finally:
        _stop(process)
    rolled = _restarted_at(cluster, namespace, "app")
    assert rolled is not None
    assert opens <= rolled < opens + timedelta(minutes=1)
    held = [m for m in log_messages(tmp_path / "reconcile.log") if m["msg"].startswith("rollout pending")]
    assert held, "cycles before the opening held the move"
    assert f"outside window until {opens.strftime('%Y-%m-%dT%H:%M:%SZ')}" in held[0]["msg"]
    warnings = events(cluster, namespace, "InvalidRolloutPolicy")
    assert len(warnings) == 1, warnings
    assert warnings[0]["type"] == "Warning"
    assert "policy.kube-autorollout/cooldown" in warnings[0]["message"]
    assert "a little" not in warnings[0]["message"]


def _rolling(deployment: dict[str, Any]) -> bool:
    spec, status = deployment["spec"], deployment.get("status") or {}
    replicas = spec.get("replicas", 1)
    return not (
        status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
        and status.get("updatedReplicas", 0) >= replicas
        and status.get("availableReplicas", 0) >= replicas
        and status.get("replicas", 0) <= replicas
    )


def test_the_in_flight_cap_rolls_one_deployment_at_a_time_in_name_order(
    cluster: LocalCluster, registry: LocalRegistry, running_namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    ns = running_namespace
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=168)
    names = ["d-one", "a-two", "c-three", "b-four"]
    for name in names:
        apply(cluster, workload("Deployment", name, ns, [("app", image)], recorded={"app": v1}, replicas=2))
    wait_for(
        "every Deployment available",
        lambda: (
            all(not _rolling(d) for d in list_items(cluster, "deployments", ns))
            and len(list_items(cluster, "deployments", ns)) == 4
        ),
        timeout=60,
    )
    registry.push_image(unique_repo, "latest", seed=169)
    config = write_config(
        tmp_path / "config.yaml", [ns], cronSchedule="* * * * * *", rolloutPolicy={"maxRolloutsInFlight": 1}
    )
    most = 0
    process = start_cli(cluster, config, "reconcile", log_path=tmp_path / "reconcile.log")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            deployments = list_items(cluster, "deployments", ns)
            started = [
                d
                for d in deployments
                if (d["spec"]["template"]["metadata"].get("annotations") or {}).get(RESTARTED_AT)
            ]
            most = max(most, sum(1 for d in started if _rolling(d)))
            if len(started) == len(names) and not any(_rolling(d) for d in deployments):
                break
            time.sleep(0.1)
    finally:
        _stop(process)
    order = sorted(names, key=lambda n: _restarted_at(cluster, ns, n) or datetime.max.replace(tzinfo=UTC))
    assert order == sorted(names), order
    assert most == 1, f"{most} rollouts were in flight at once"
    assert all(replicaset_count(cluster, ns, n) == 2 for n in names)
    slot = [
        m
        for m in log_messages(tmp_path / "reconcile.log")
        if "waiting-for-slot (1 in flight, at most 1)" in m["msg"]
    ]
    assert slot, "held rollouts said they wait for a slot"


def test_a_workload_on_its_own_schedule_is_checked_when_it_fires_and_the_others_on_the_global_one(
    cluster: LocalCluster, registry: LocalRegistry, namespace: str, unique_repo: str, tmp_path: Path
) -> None:
    image = f"{registry.host}/{unique_repo}:latest"
    v1 = registry.push_image(unique_repo, "latest", seed=170)
    fast = _with_policy(
        workload("Deployment", "fast", namespace, [("app", image)], recorded={"app": v1}),
        schedule="* * * * * *",
    )
    apply(cluster, fast)
    apply(cluster, workload("Deployment", "slow", namespace, [("app", image)], recorded={"app": v1}))
    wait_replicasets(cluster, namespace, "fast", 1)
    wait_replicasets(cluster, namespace, "slow", 1)
    registry.push_image(unique_repo, "latest", seed=171)
    # The global schedule fires once a year: only the override makes a cycle happen at all.
    config = write_config(tmp_path / "config.yaml", [namespace], cronSchedule="0 0 0 1 1 *")
    process = start_cli(cluster, config, "reconcile", log_path=tmp_path / "reconcile.log")
    try:
        wait_replicasets(cluster, namespace, "fast", 2)
        done = _cycles(tmp_path / "reconcile.log")
        wait_for("three more cycles", lambda: _cycles(tmp_path / "reconcile.log") >= done + 3, timeout=60)
    finally:
        _stop(process)
    assert replicaset_count(cluster, namespace, "fast") == 2
    assert replicaset_count(cluster, namespace, "slow") == 1  # its (global) schedule has not fired
    summaries = [m for m in log_messages(tmp_path / "reconcile.log") if m["msg"].startswith("cycle finished")]
    assert summaries
    assert {m["workloads"] for m in summaries} == {1}, "each cycle checked the fast one only"
