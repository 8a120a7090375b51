"""The rollout policy between plan and act: settle, cooldown, windows, the in-flight cap, watched
containers and invalid annotations, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autorollout.annotations import format_recorded, format_seen
from autorollout.policy.decide import WaitReason
from autorollout.policy.inflight import rollout_progress
from autorollout.policy.model import PolicyDefaults
from autorollout.registry.errors import UnreachableError
from reconciler.gate import apply_policy, in_flight
from reconciler.patch import adoption_patch
from reconciler.plan import Adoption, Rollout, WorkloadPlan, plan_workload
from reconciler.report import CycleReport
from reconciler.status import describe_cycle, state_text, status_rows
from reconciler.workload import Workload, parse_workload
from tests.unit.reconciler_objects import D1, D2, D3, IMAGE, SIDECAR, manifest, workload_object

pytestmark = pytest.mark.unit

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SETTLE = {"policy.kube-autorollout/settle": "5m"}
DONE_STATUS = {"observedGeneration": 3, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}


def workload(
    name: str = "app",
    *,
    marks: dict[str, str] | None = None,
    restarted: datetime | None = None,
    status: dict[str, Any] | None = None,
    **policy: str,
) -> Workload:
    annotations = {"digest.kube-autorollout/app": format_recorded(IMAGE, D1), **policy}
    annotations.update({f"seen.kube-autorollout/{k}": v for k, v in (marks or {}).items()})
    template = {"kube-autorollout/restartedAt": restarted.isoformat()} if restarted else None
    obj = workload_object(name=name, annotations=annotations, template_annotations=template)
    obj["status"] = DONE_STATUS if status is None else status
    return parse_workload("Deployment", obj)


def gate(w: Workload, now: datetime, digest: str = D2, **defaults: Any) -> WorkloadPlan:
    plan = plan_workload(w, {"app": manifest(digest)})
    return apply_policy([plan], PolicyDefaults(**defaults), now=now).plans[0]


def test_without_policy_a_moved_tag_rolls_out_unchanged() -> None:
    w = workload()
    plan = plan_workload(w, {"app": manifest(D2)})
    assert apply_policy([plan], PolicyDefaults(), now=T0).plans[0] is plan
    assert isinstance(plan.action, Rollout)


def test_settle_marks_the_first_sighting_and_rolls_once_two_lookups_that_far_apart_agree() -> None:
    first = gate(workload(**SETTLE), T0)
    assert first.pending is not None
    assert first.pending.reason is WaitReason.SETTLING
    assert first.pending.text() == "settling for 5m more"
    assert isinstance(first.action, Adoption)
    assert not first.action.records
    assert first.action.marks == {"app": format_seen(D2, T0)}
    # The mark is all the state: a later cycle (any process) reads it back from the workload.
    marked = workload(marks={"app": format_seen(D2, T0)}, **SETTLE)
    almost = gate(marked, T0 + timedelta(minutes=4, seconds=59))
    assert almost.pending is not None
    assert almost.action is None
    assert almost.pending.text() == "settling for 1s more"
    due = gate(marked, T0 + timedelta(minutes=5))
    assert due.pending is None
    assert isinstance(due.action, Rollout)
    assert due.action.marks == {"app": None}  # the rollout patch clears the mark


def test_settle_starts_again_when_the_tag_moves_again_while_settling() -> None:
    marked = workload(marks={"app": format_seen(D2, T0)}, **SETTLE)
    moved_again = gate(marked, T0 + timedelta(minutes=6), digest=D3)
    assert moved_again.pending is not None
    assert moved_again.pending.reason is WaitReason.SETTLING
    assert moved_again.pending.text() == "settling for 5m more"
    assert isinstance(moved_again.action, Adoption)
    assert moved_again.action.marks == {"app": format_seen(D3, T0 + timedelta(minutes=6))}


def test_a_tag_moving_back_while_settling_clears_its_mark_without_a_rollout() -> None:
    marked = workload(marks={"app": format_seen(D2, T0)}, **SETTLE)
    back = gate(marked, T0 + timedelta(minutes=1), digest=D1)
    assert back.pending is None
    assert isinstance(back.action, Adoption)
    assert back.action.marks == {"app": None}
    ops = adoption_patch(back.workload, back.action.records, marks=back.action.marks)
    assert {"op": "remove", "path": "/metadata/annotations/seen.kube-autorollout~1app"} in ops


def test_a_failed_lookup_while_settling_keeps_the_mark() -> None:
    marked = workload(marks={"app": format_seen(D2, T0)}, **SETTLE)
    plan = plan_workload(marked, {"app": UnreachableError("registry down")})
    gated = apply_policy([plan], PolicyDefaults(), now=T0 + timedelta(minutes=1)).plans[0]
    assert gated.action is None  # no patch: the mark (and its first sighting) survives the outage
    assert isinstance(gate(marked, T0 + timedelta(minutes=5)).action, Rollout)


def test_cooldown_holds_a_move_until_the_last_rollout_is_that_old() -> None:
    w = workload(restarted=T0 - timedelta(minutes=3), **{"policy.kube-autorollout/cooldown": "10m"})
    held = gate(w, T0)
    assert held.pending is not None
    assert held.pending.reason is WaitReason.COOLDOWN
    assert held.pending.text() == "cooldown until 2026-06-01T12:07:00Z"
    assert held.action is None
    assert isinstance(gate(w, T0 + timedelta(minutes=7)).action, Rollout)


def test_a_global_cooldown_applies_and_an_annotation_overrides_it() -> None:
    recent = T0 - timedelta(minutes=1)
    assert gate(workload(restarted=recent), T0, cooldown_seconds=600).pending is not None
    override = workload(restarted=recent, **{"policy.kube-autorollout/cooldown": "0"})
    assert isinstance(gate(override, T0, cooldown_seconds=600).action, Rollout)


def test_outside_its_windows_a_move_stays_pending_and_rolls_at_the_next_opening() -> None:
    w = workload(**{"policy.kube-autorollout/windows": "0 2 * * * 1h Europe/Berlin"})
    held = gate(w, T0)
    assert held.pending is not None
    assert held.pending.reason is WaitReason.OUTSIDE_WINDOW
    assert held.pending.text() == "outside window until 2026-06-02T00:00:00Z"
    assert isinstance(gate(w, datetime(2026, 6, 2, 0, 0, tzinfo=UTC)).action, Rollout)


def test_settle_counts_while_a_window_is_closed_and_every_reason_is_shown() -> None:
    w = workload(**SETTLE, **{"policy.kube-autorollout/windows": "0 2 * * * 1h UTC"})
    held = gate(w, T0)
    assert held.pending is not None
    assert [x.reason for x in held.pending.waits] == [WaitReason.SETTLING, WaitReason.OUTSIDE_WINDOW]
    assert isinstance(held.action, Adoption)
    assert held.action.marks
    assert state_text(held.verdicts[0], pending=held.pending).startswith(
        "pending (settling for 5m more; outside"
    )


def test_the_in_flight_cap_lets_the_first_in_a_stable_order_roll_and_holds_the_rest() -> None:
    names = ["delta", "alpha", "charlie", "bravo"]
    plans = [plan_workload(workload(n), {"app": manifest(D2)}) for n in names]
    rolling = workload("busy", status={"observedGeneration": 3, "replicas": 2, "updatedReplicas": 1})
    result = apply_policy(
        plans, PolicyDefaults(max_in_flight=3), now=T0, cluster=[rolling, *map(workload, names)]
    )
    assert result.in_flight == 1
    rolled = sorted(p.workload.name for p in result.plans if isinstance(p.action, Rollout))
    assert rolled == ["alpha", "bravo"]
    held = {p.workload.name: p.pending for p in result.plans if p.pending is not None}
    assert set(held) == {"charlie", "delta"}
    assert held["delta"] is not None
    assert held["delta"].text() == "waiting-for-slot (1 in flight, at most 3)"


def test_a_slot_hold_after_settling_keeps_the_settle_mark() -> None:
    marked = workload("b", marks={"app": format_seen(D2, T0)}, **SETTLE)
    plans = [
        plan_workload(workload("a"), {"app": manifest(D2)}),
        plan_workload(marked, {"app": manifest(D2)}),
    ]
    result = apply_policy(plans, PolicyDefaults(max_in_flight=1), now=T0 + timedelta(hours=1))
    assert isinstance(result.plans[0].action, Rollout)
    held = result.plans[1]
    assert held.pending is not None
    assert held.pending.reason is WaitReason.SLOT
    assert held.action is None  # the mark stays as it is: settled already


@pytest.mark.parametrize(
    ("kind", "status", "rolling"),
    [
        ("Deployment", DONE_STATUS, False),
        ("Deployment", {**DONE_STATUS, "observedGeneration": 2}, True),
        ("Deployment", {**DONE_STATUS, "replicas": 2}, True),  # an old pod still runs
        ("Deployment", {**DONE_STATUS, "availableReplicas": 0}, True),
        (
            "Deployment",
            {
                **DONE_STATUS,
                "availableReplicas": 0,
                "conditions": [
                    {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
                ],
            },
            False,
        ),
        ("StatefulSet", {"observedGeneration": 3, "currentRevision": "a", "updateRevision": "b"}, True),
        (
            "StatefulSet",
            {
                "observedGeneration": 3,
                "currentRevision": "b",
                "updateRevision": "b",
                "updatedReplicas": 1,
                "readyReplicas": 1,
            },
            False,
        ),
        (
            "DaemonSet",
            {"observedGeneration": 3, "desiredNumberScheduled": 2, "updatedNumberScheduled": 1},
            True,
        ),
        (
            "DaemonSet",
            {
                "observedGeneration": 3,
                "desiredNumberScheduled": 2,
                "updatedNumberScheduled": 2,
                "numberAvailable": 2,
            },
            False,
        ),
    ],
)
def test_rolling_is_read_from_each_controllers_status(
    kind: str, status: dict[str, Any], rolling: bool
) -> None:
    obj = workload_object(kind=kind, template_annotations={"kube-autorollout/restartedAt": T0.isoformat()})
    obj["spec"]["replicas"] = 1
    obj["status"] = status
    w = parse_workload(kind, obj)
    assert w.progress == rollout_progress(kind, obj)
    assert in_flight([w], T0 + timedelta(minutes=1), 600) == int(rolling)


def test_a_statefulset_that_never_finishes_frees_its_slot_after_the_progress_deadline() -> None:
    obj = workload_object(
        kind="StatefulSet", template_annotations={"kube-autorollout/restartedAt": T0.isoformat()}
    )
    obj["status"] = {"observedGeneration": 3, "currentRevision": "a", "updateRevision": "b"}
    w = parse_workload("StatefulSet", obj)
    assert in_flight([w], T0 + timedelta(seconds=599), 600) == 1
    assert in_flight([w], T0 + timedelta(seconds=600), 600) == 0


def test_unwatched_containers_get_no_verdict_lookup_or_record() -> None:
    obj = workload_object(
        containers=[("app", IMAGE), ("side", SIDECAR)],
        init_containers=[("setup", SIDECAR)],
        annotations={
            "policy.kube-autorollout/exclude-containers": "side,setup",
            "digest.kube-autorollout/side": format_recorded(SIDECAR, D1),
            "digest.kube-autorollout/app": format_recorded(IMAGE, D1),
        },
    )
    w = parse_workload("Deployment", obj)
    assert [c.name for c in w.watched()] == ["app"]
    still = plan_workload(w, {"app": manifest(D1), "side": manifest(D3), "setup": manifest(D3)})
    assert [v.container.name for v in still.verdicts] == ["app"]
    assert still.action is None  # side's tag moved, but side is not watched
    plan = plan_workload(w, {"app": manifest(D2), "side": manifest(D3), "setup": manifest(D3)})
    assert isinstance(plan.action, Rollout)
    assert plan.action.stale == ("side",)
    only = parse_workload(
        "Deployment",
        {
            **obj,
            "metadata": {**obj["metadata"], "annotations": {"policy.kube-autorollout/containers": "setup"}},
        },
    )
    assert [c.name for c in only.watched()] == ["setup"]


def test_invalid_annotations_fall_back_to_the_default_and_are_reported_once_each() -> None:
    w = workload(
        **{
            "policy.kube-autorollout/settle": "soon",
            "policy.kube-autorollout/windows": "0 2 * * * 1h Nowhere/Special",
            "policy.kube-autorollout/containers": "app",
            "policy.kube-autorollout/exclude-containers": "app",
            "policy.kube-autorollout/setle": "5m",
        }
    )
    result = apply_policy([plan_workload(w, {"app": manifest(D2)})], PolicyDefaults(settle_seconds=0), now=T0)
    assert isinstance(result.plans[0].action, Rollout)  # settle 0 and no windows: the defaults
    messages = sorted(str(problem) for _, problem in result.problems)
    assert messages == [
        "annotation policy.kube-autorollout/exclude-containers: ignored: the containers annotation is set "
        "too",
        "annotation policy.kube-autorollout/setle: unknown policy annotation; expected containers, "
        "exclude-containers, schedule, windows, settle, cooldown, compare",
        "annotation policy.kube-autorollout/settle: not a duration (e.g. 90s, 10m, 1h30m)",
        "annotation policy.kube-autorollout/windows: timezone is not an IANA zone name (e.g. Europe/Berlin)",
    ]


def test_a_dry_run_says_what_is_pending_and_which_marks_it_would_write() -> None:
    held = gate(workload(**SETTLE), T0)
    report = CycleReport(dry_run=True, workloads=1, plans=[held])
    lines = describe_cycle(report)
    assert "pending         ns/deployment/app: settling for 5m more" in lines
    assert "would mark settling ns/deployment/app: container app" in lines
    assert lines[-1].endswith("would roll out 0, would record 0, registry errors 0; nothing was changed")
    assert [row.state for row in status_rows([held])] == ["pending (settling for 5m more)"]
