"""The cycle's plan memo: a steady workload's plan is reused, and every plan equals a fresh one."""

from __future__ import annotations

import itertools

import pytest

from autorollout.registry.errors import UnreachableError
from reconciler.plan import PlanMemo, Resolution, Rollout, plan_cycle, plan_workload
from reconciler.pods import PodReport
from reconciler.workload import Workload, parse_workload
from tests.unit.reconciler_objects import D1, D2, D3, IMAGE, manifest, workload_object

pytestmark = pytest.mark.unit


def record(name: str, digest: str = D1, version: str = "1", paused: bool = False) -> Workload:
    obj = workload_object(
        name=name,
        annotations={"digest.kube-autorollout/app": f"{IMAGE}@{digest}"},
        resource_version=version,
        paused=paused,
    )
    return parse_workload("Deployment", obj)


def test_a_steady_workload_gets_the_same_plan_object_again() -> None:
    memo = PlanMemo()
    w = record("a")
    first = plan_cycle([w], {w.key: {"app": manifest(D1)}}, memo=memo)
    again = plan_cycle([w], {w.key: {"app": manifest(D1)}}, memo=memo)
    assert again[0] is first[0]
    assert again == [plan_workload(w, {"app": manifest(D1)})]


def test_a_moved_tag_is_planned_afresh() -> None:
    memo = PlanMemo()
    w = record("a")
    plan_cycle([w], {w.key: {"app": manifest(D1)}}, memo=memo)
    moved = plan_cycle([w], {w.key: {"app": manifest(D2)}}, memo=memo)[0]
    assert isinstance(moved.action, Rollout)
    assert [c.new for c in moved.action.changes] == [D2]


def test_a_replaced_record_is_planned_afresh_even_when_equal() -> None:
    memo = PlanMemo()
    old, new = record("a"), record("a")  # the watch delivered the same object again
    plan_cycle([old], {old.key: {"app": manifest(D1)}}, memo=memo)
    plan = plan_cycle([new], {new.key: {"app": manifest(D1)}}, memo=memo)[0]
    assert plan.workload is new


def test_plans_with_an_action_or_an_error_are_not_kept() -> None:
    memo = PlanMemo()
    w = record("a")
    error: dict[str, Resolution] = {"app": UnreachableError("registry down")}
    for resolutions in ({"app": manifest(D2)}, error):
        one = plan_cycle([w], {w.key: resolutions}, memo=memo)[0]
        two = plan_cycle([w], {w.key: resolutions}, memo=memo)[0]
        assert one is not two
        assert len(memo) == 0


def test_a_workload_whose_pods_were_read_is_planned_with_them() -> None:
    memo = PlanMemo()
    bare = parse_workload("Deployment", workload_object(name="a"))  # nothing recorded: adoption
    plan_cycle([bare], {bare.key: {"app": manifest(D1)}}, memo=memo)
    pods = {bare.key: PodReport(pods=1, ready=1, images={"app": D1})}
    plan = plan_cycle([bare], {bare.key: {"app": manifest(D1)}}, pods, memo=memo)[0]
    assert plan == plan_workload(bare, {"app": manifest(D1)}, pods[bare.key])
    assert plan.action is not None


def test_deleted_workloads_are_forgotten_once_the_memo_outgrows_the_cycle() -> None:
    memo = PlanMemo()
    many = [record(f"w{i}") for i in range(1100)]
    plan_cycle(many, {w.key: {"app": manifest(D1)} for w in many}, memo=memo)
    assert len(memo) == 1100
    few = many[:10]
    plan_cycle(few, {w.key: {"app": manifest(D1)} for w in few}, memo=memo)
    assert len(memo) == 10


def test_every_memoized_plan_equals_a_fresh_one_over_a_sequence_of_cycles() -> None:
    memo = PlanMemo()
    records = {name: record(name) for name in ("a", "b", "c")}
    digests = itertools.cycle([D1, D1, D2, D1, D3, D3])
    for step in range(30):
        if step % 7 == 3:  # the watch replaces one record (a rollout recorded, a pause toggled)
            name = "abc"[step % 3]
            records[name] = record(name, next(digests), version=str(step), paused=step % 2 == 0)
        workloads = list(records.values())
        current = next(digests)
        resolutions: dict[str, Resolution] = {"app": manifest(current)}
        if step % 5 == 4:
            resolutions = {"app": UnreachableError("registry down")}
        by_key = {w.key: resolutions for w in workloads}
        assert plan_cycle(workloads, by_key, memo=memo) == plan_cycle(workloads, by_key)
