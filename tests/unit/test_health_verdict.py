"""The health watch's pure parts: the watch record, the slim status, the verdict per kind with an
injected clock, what pods say, the verdict patch and the holds in the gate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jsonpatch
import pytest

from autorollout.annotations import format_recorded
from autorollout.config import ConfigError, load_config_text
from autorollout.health import (
    Judgement,
    RolledDigest,
    Verdict,
    confirm,
    format_watch,
    health_status,
    judge,
    parse_watch,
)
from autorollout.policy.decide import WaitReason
from reconciler.health_pods import MixedDigest, mixed_digests, parse_mixed, pod_failure, pod_health
from reconciler.holds import apply_holds
from reconciler.patch import rollout_patch
from reconciler.plan import Rollout, plan_workload
from reconciler.status import health_lines, state_text
from reconciler.verdicts import verdict_patch
from reconciler.workload import Workload, parse_workload
from tests.unit.reconciler_objects import D1, D2, D3, IMAGE, manifest, workload_object

pytestmark = pytest.mark.unit

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
WATCH = format_watch(T0, [RolledDigest("app", D1, D2)])
ROLLING = {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1}
DONE = {"observedGeneration": 3, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}


def _progressing(reason: str, message: str = "") -> dict[str, Any]:
    return {"type": "Progressing", "status": "False", "reason": reason, "message": message}


def watched(
    kind: str = "Deployment",
    status: dict[str, Any] | None = None,
    *,
    recorded: str = D2,
    extra: dict[str, str] | None = None,
    deadline: int | None = None,
) -> tuple[dict[str, Any], Workload]:
    annotations = {"digest.kube-autorollout/app": format_recorded(IMAGE, recorded), **(extra or {})}
    obj = workload_object(kind=kind, annotations=annotations)
    obj["status"] = status if status is not None else ROLLING
    if deadline is not None:
        obj["spec"]["progressDeadlineSeconds"] = deadline
    return obj, parse_workload(kind, obj)


def test_watch_record_round_trips_and_rejects_what_is_not_one() -> None:
    value = format_watch(T0, [RolledDigest("app", D1, D2), RolledDigest("init", None, D3)])
    record = parse_watch(value)
    assert record is not None
    assert record.started == T0
    assert record.rolled == (RolledDigest("app", D1, D2), RolledDigest("init", None, D3))
    assert record.text() == f"container app: {D1} -> {D2}; container init: unrecorded -> {D3}"
    for bad in ("", "not-a-time app=a,b", f"{T0.isoformat()}", f"{T0.isoformat()} app=nodigests"):
        assert parse_watch(bad) is None


def test_only_workloads_with_a_watch_record_carry_a_health_status() -> None:
    _, steady = watched(extra={})
    assert steady.watch is None
    assert steady.health is None
    assert steady.holds is None
    _, w = watched(extra={"health.kube-autorollout/watch": WATCH, "hold.kube-autorollout/app": D3})
    assert w.watch == WATCH
    assert w.health is not None
    assert w.holds == {"app": D3}


def test_deployment_succeeds_when_the_new_revision_is_updated_and_available() -> None:
    obj, _ = watched(status=DONE)
    record = parse_watch(WATCH)
    assert record is not None
    now = T0 + timedelta(seconds=42)
    verdict = judge("Deployment", health_status("Deployment", obj), record, now, 600)
    assert (verdict.verdict, verdict.took) == (Verdict.DONE, 42.0)
    # The new pods confirm: stable -> succeeded; not yet -> watching; failing -> watching until the
    # deadline, then failed with what they say.
    assert confirm(verdict, "", stable=True).verdict is Verdict.SUCCEEDED
    assert confirm(verdict, "", stable=False).verdict is Verdict.WATCHING
    assert confirm(verdict, "pod x: CrashLoopBackOff", stable=False).verdict is Verdict.WATCHING
    late = judge("Deployment", health_status("Deployment", obj), record, T0 + timedelta(seconds=600), 600)
    failed = confirm(late, "pod x: CrashLoopBackOff", stable=False)
    assert (failed.verdict, failed.reason) == (Verdict.FAILED, "pod x: CrashLoopBackOff")


def test_a_deployment_that_completed_then_lost_its_new_pods_fails_at_its_own_deadline() -> None:
    record = parse_watch(WATCH)
    assert record is not None
    complete = [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]
    obj, _ = watched(status={**ROLLING, "conditions": complete}, deadline=20)
    status = health_status("Deployment", obj)
    assert judge("Deployment", status, record, T0 + timedelta(seconds=19), 600).verdict is Verdict.WATCHING
    failed = judge("Deployment", status, record, T0 + timedelta(seconds=20), 600)
    assert failed.verdict is Verdict.FAILED
    assert failed.reason == "new pods not available 20s after the rollout"


def test_deployment_is_watched_until_its_controller_says_the_deadline_passed() -> None:
    record = parse_watch(WATCH)
    assert record is not None
    obj, _ = watched(status=ROLLING)
    late = T0 + timedelta(hours=5)  # a Deployment's deadline is its controller's, counted from progress
    assert judge("Deployment", health_status("Deployment", obj), record, late, 60).verdict is Verdict.WATCHING
    message = 'ReplicaSet "app-5d8" has timed out progressing.'
    obj, _ = watched(status={**ROLLING, "conditions": [_progressing("ProgressDeadlineExceeded", message)]})
    verdict = judge("Deployment", health_status("Deployment", obj), record, T0 + timedelta(seconds=61), 600)
    assert verdict.verdict is Verdict.FAILED
    assert verdict.reason == f"ProgressDeadlineExceeded: {message}"


def test_a_stale_deadline_condition_before_the_controller_saw_the_rollout_is_not_a_failure() -> None:
    record = parse_watch(WATCH)
    assert record is not None
    stale = {**ROLLING, "observedGeneration": 2, "conditions": [_progressing("ProgressDeadlineExceeded")]}
    obj, _ = watched(status=stale)
    status = health_status("Deployment", obj)
    assert not status.current
    assert not status.deadline_exceeded
    assert judge("Deployment", status, record, T0 + timedelta(seconds=5), 600).verdict is Verdict.WATCHING


@pytest.mark.parametrize(
    ("kind", "rolling", "done"),
    [
        (
            "StatefulSet",
            {"observedGeneration": 3, "currentRevision": "a", "updateRevision": "b", "updatedReplicas": 0},
            {
                "observedGeneration": 3,
                "currentRevision": "b",
                "updateRevision": "b",
                "updatedReplicas": 1,
                "readyReplicas": 1,
            },
        ),
        (
            "DaemonSet",
            {"observedGeneration": 3, "desiredNumberScheduled": 2, "updatedNumberScheduled": 1},
            {
                "observedGeneration": 3,
                "desiredNumberScheduled": 2,
                "updatedNumberScheduled": 2,
                "numberAvailable": 2,
            },
        ),
    ],
)
def test_kinds_without_a_deadline_fail_the_configured_default_after_the_start(
    kind: str, rolling: dict[str, Any], done: dict[str, Any]
) -> None:
    record = parse_watch(WATCH)
    assert record is not None
    obj, _ = watched(kind, rolling)
    status = health_status(kind, obj)
    assert judge(kind, status, record, T0 + timedelta(seconds=299), 300).verdict is Verdict.WATCHING
    failed = judge(kind, status, record, T0 + timedelta(seconds=300), 300)
    assert failed.verdict is Verdict.FAILED
    assert "within 300s" in failed.reason
    obj, _ = watched(kind, done)
    assert (
        judge(kind, health_status(kind, obj), record, T0 + timedelta(seconds=9), 300).verdict is Verdict.DONE
    )


def _pod(name: str, created: str, statuses: list[dict[str, Any]], *, ready: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {"phase": "Running", "conditions": conditions, "containerStatuses": statuses},
    }


def test_pod_failure_names_the_newest_failing_pod_container_reason_and_exit_code() -> None:
    crash = {
        "name": "app",
        "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
        "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}},
    }
    healthy = {"name": "app", "state": {"running": {}}, "imageID": f"x@{D1}"}
    pods = [
        _pod("old", "2026-06-01T11:00:00Z", [healthy], ready=True),
        _pod("new", "2026-06-01T12:00:01Z", [crash]),
    ]
    assert (
        pod_failure(pods)
        == "pod new container app: CrashLoopBackOff (exit code 3, 4 restarts) (1 of 2 pods failing)"
    )
    pull = {"name": "app", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
    assert pod_failure([_pod("p", "t", [pull])]).startswith("pod p container app: ImagePullBackOff")
    assert pod_failure(pods[:1]) == ""


def test_pod_health_is_stable_once_every_container_ran_unrestarted_long_enough() -> None:
    def pod(started: str, restarts: int = 0) -> dict[str, Any]:
        entry = {"name": "app", "restartCount": restarts, "state": {"running": {"startedAt": started}}}
        if restarts:
            entry["lastState"] = {"terminated": {"exitCode": 3, "reason": "Error"}}
        return _pod("p", "2026-06-01T12:00:00Z", [entry], ready=True)

    now = T0 + timedelta(seconds=30)
    assert pod_health([pod("2026-06-01T12:00:05Z")], now, 10) == ("", True)
    assert pod_health([pod("2026-06-01T12:00:25Z")], now, 10) == ("", False)  # too young
    problem, stable = pod_health([pod("2026-06-01T12:00:05Z", restarts=1)], now, 10)
    assert (
        problem
        == "pod p container app: restarted after Error (exit code 3, 1 restarts) (1 of 1 pods failing)"
    )
    assert not stable
    assert pod_health([], now, 10) == ("", True)  # scaled to zero


def test_mixed_digests_counts_ready_pods_running_another_digest_than_the_recorded() -> None:
    def running(digest: str) -> dict[str, Any]:
        return {"name": "app", "state": {"running": {}}, "imageID": f"{IMAGE.split(':')[0]}@{digest}"}

    pods = [
        _pod("a", "1", [running(D2)], ready=True),
        _pod("b", "2", [running(D1)], ready=True),
        _pod("c", "3", [running(D1)], ready=False),  # not ready: not counted
    ]
    assert mixed_digests(pods, {"app": D2}) == {"app": MixedDigest(D1, 1, 2)}
    assert mixed_digests(pods[:1], {"app": D2}) == {}
    assert parse_mixed(MixedDigest(D1, 1, 2).value()) == MixedDigest(D1, 1, 2)


def _apply(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    return jsonpatch.apply_patch(obj, ops)  # type: ignore[no-any-return]


def test_rollout_patch_writes_the_watch_record_and_the_verdict_patch_ends_it_with_a_hold() -> None:
    obj, w = watched(recorded=D1, status=DONE)
    ops = rollout_patch(
        w, {"app": format_recorded(IMAGE, D2)}, restarted_key="r", restarted_at="t", watch=WATCH
    )
    rolled = _apply(obj, ops)
    assert rolled["metadata"]["annotations"]["health.kube-autorollout/watch"] == WATCH
    w = parse_workload("Deployment", rolled)
    record = parse_watch(w.watch)
    assert record is not None
    failed = Judgement(Verdict.FAILED, 61.0, "ProgressDeadlineExceeded")
    ops = verdict_patch(w, record, failed, now=T0, reason="ProgressDeadlineExceeded: timed out")
    assert ops[0] == {
        "op": "test",
        "path": "/metadata/annotations/health.kube-autorollout~1watch",
        "value": WATCH,
    }
    after = _apply(rolled, ops)["metadata"]["annotations"]
    assert "health.kube-autorollout/watch" not in after
    assert after["hold.kube-autorollout/app"] == D2
    # The old pods run the old digest: it is recorded again, so the held move shows as pending.
    assert after["digest.kube-autorollout/app"] == format_recorded(IMAGE, D1)
    assert after["health.kube-autorollout/verdict"].startswith("failed 2026-06-01T12:00:00")
    # A second judge of the same watch record (another replica) is rejected by the test op.
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        _apply(_apply(rolled, ops), ops)


def test_a_later_success_lifts_the_hold_and_records_mixed_digests() -> None:
    watch = format_watch(T0, [RolledDigest("app", D2, D3)])
    obj, w = watched(
        recorded=D3,
        status=DONE,
        extra={"health.kube-autorollout/watch": watch, "hold.kube-autorollout/app": D2},
    )
    record = parse_watch(w.watch)
    assert record is not None
    verdict = confirm(judge("Deployment", w.health, record, T0 + timedelta(seconds=7), 600), "", stable=True)
    assert verdict.verdict is Verdict.SUCCEEDED
    ops = verdict_patch(w, record, verdict, now=T0, mixed={"app": MixedDigest(D1, 1, 2)})
    after = _apply(obj, ops)["metadata"]["annotations"]
    assert "hold.kube-autorollout/app" not in after
    assert after["mixed.kube-autorollout/app"] == f"{D1} 1/2"
    assert after["health.kube-autorollout/verdict"].endswith(" 7s")


def test_the_gate_does_not_roll_to_a_held_digest_and_rolls_when_the_tag_moves_on() -> None:
    _, w = watched(recorded=D1, status=DONE, extra={"hold.kube-autorollout/app": D2})
    plans, dropped = apply_holds([plan_workload(w, {"app": manifest(D2)})], now=T0)
    assert plans[0].action is None
    assert plans[0].pending is not None
    assert plans[0].pending.reason is WaitReason.HELD
    assert [d.change.new for d in dropped] == [D2]
    assert dropped[0].own
    assert (
        state_text(plans[0].verdicts[0], None, plans[0].pending) == f"pending (held (container app at {D2}))"
    )
    plans, dropped = apply_holds([plan_workload(w, {"app": manifest(D3)})], now=T0)
    assert isinstance(plans[0].action, Rollout)
    assert not dropped


def test_digests_held_elsewhere_hold_other_workloads_only_when_asked() -> None:
    _, w = watched(recorded=D1, status=DONE)
    plan = plan_workload(w, {"app": manifest(D2)})
    assert apply_holds([plan], now=T0)[0] == [plan]
    plans, dropped = apply_holds([plan], now=T0, elsewhere={D2})
    assert plans[0].action is None
    assert not dropped[0].own


def test_status_lines_show_watches_holds_with_the_lift_command_and_mixed_digests() -> None:
    extra = {
        "health.kube-autorollout/watch": WATCH,
        "hold.kube-autorollout/app": D2,
        "mixed.kube-autorollout/app": f"{D1} 1/3",
    }
    _, w = watched(extra=extra)
    lines = health_lines([plan_workload(w, {"app": manifest(D2)})])
    assert lines == [
        f"watching        ns/deployment/app: rollout since {WATCH.split()[0]}: app={D1},{D2}",
        f"held            ns/deployment/app: container app at {D2} (lift: kubectl annotate -n ns "
        "deployment/app hold.kube-autorollout/app-)",
        f"mixed digests   ns/deployment/app: container app: 1 of 3 ready pods run {D1}",
    ]


def test_hold_other_workloads_is_off_by_default_and_validated_with_one_line() -> None:
    assert load_config_text("cronSchedule: '* * * * *'\n", {}).rollout_policy.hold_other_workloads is False
    on = load_config_text("rolloutPolicy:\n  holdOtherWorkloads: true\n", {})
    assert on.rollout_policy.hold_other_workloads is True
    with pytest.raises(ConfigError) as info:
        load_config_text("rolloutPolicy:\n  holdOtherWorkloads: maybe\n", {})
    [problem] = info.value.problems
    assert problem.startswith("rolloutPolicy.holdOtherWorkloads")
    assert "maybe" not in problem
