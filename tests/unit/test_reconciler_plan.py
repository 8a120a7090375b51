"""Planning: recorded digests + registry digests (+ running pods for adoption) -> decisions."""

from __future__ import annotations

import pytest

from autorollout.registry.errors import UnreachableError
from reconciler.plan import (
    Adoption,
    ContainerState,
    DigestChange,
    Rollout,
    Unchecked,
    needs_running_digests,
    plan_cycle,
    plan_workload,
)
from reconciler.pods import PodReport
from reconciler.workload import parse_workload
from tests.unit.reconciler_objects import (
    D1,
    D2,
    D3,
    IMAGE,
    P_AMD64,
    P_ARM64,
    SIDECAR,
    manifest,
    workload_object,
)

pytestmark = pytest.mark.unit


def recorded(**containers: str) -> dict[str, str]:
    return {f"digest.kube-autorollout/{name}": value for name, value in containers.items()}


def running(**images: str | None) -> PodReport:
    """One Ready pod of the workload's own, reporting these digests."""
    return PodReport(pods=1, ready=1, images=images)


def two_containers(**annotations: str):  # type: ignore[no-untyped-def]
    return parse_workload(
        "Deployment",
        workload_object(containers=[("app", IMAGE), ("side", SIDECAR)], annotations=recorded(**annotations)),
    )


def test_unchanged_digests_plan_nothing() -> None:
    w = two_containers(app=f"{IMAGE}@{D1}", side=f"{SIDECAR}@{D2}")
    plan = plan_workload(w, {"app": manifest(D1), "side": manifest(D2)})
    assert plan.action is None
    assert [v.state for v in plan.verdicts] == [ContainerState.UP_TO_DATE, ContainerState.UP_TO_DATE]


def test_one_moved_tag_of_two_gives_one_rollout_naming_only_that_container() -> None:
    w = two_containers(app=f"{IMAGE}@{D1}", side=f"{SIDECAR}@{D2}")
    plan = plan_workload(w, {"app": manifest(D3), "side": manifest(D2)})
    assert isinstance(plan.action, Rollout)
    assert plan.action.changes == (DigestChange("app", IMAGE, D1, D3),)
    assert plan.action.records == {"app": f"{IMAGE}@{D3}"}
    assert [v.state for v in plan.verdicts] == [ContainerState.WILL_ROLL, ContainerState.UP_TO_DATE]


def test_both_moved_still_one_rollout_with_two_changes() -> None:
    w = two_containers(app=f"{IMAGE}@{D1}", side=f"{SIDECAR}@{D1}")
    plan = plan_workload(w, {"app": manifest(D2), "side": manifest(D3)})
    assert isinstance(plan.action, Rollout)
    assert [c.container for c in plan.action.changes] == ["app", "side"]


def test_registry_error_never_rolls_out() -> None:
    w = two_containers(app=f"{IMAGE}@{D1}", side=f"{SIDECAR}@{D2}")
    error = UnreachableError("connection refused", registry="registry.local:5000", reference=IMAGE)
    plan = plan_workload(w, {"app": error, "side": manifest(D2)})
    assert plan.action is None
    assert [v.state for v in plan.errors] == [ContainerState.ERROR]
    assert "UnreachableError" in plan.errors[0].detail
    assert "connection refused" in plan.errors[0].detail


def test_error_on_one_container_does_not_block_a_moved_other() -> None:
    w = two_containers(app=f"{IMAGE}@{D1}", side=f"{SIDECAR}@{D2}")
    plan = plan_workload(w, {"app": manifest(D3), "side": UnreachableError("down")})
    assert isinstance(plan.action, Rollout)
    assert plan.action.records == {"app": f"{IMAGE}@{D3}"}  # side keeps its record untouched


def test_unrecorded_is_adopted_from_what_the_own_ready_pod_runs() -> None:
    w = two_containers(app=f"{IMAGE}@{D1}")
    plan = plan_workload(w, {"app": manifest(D1), "side": manifest(D2)}, running(app=D1, side=D2))
    assert isinstance(plan.action, Adoption)
    assert plan.action.records == {"side": f"{SIDECAR}@{D2}"}
    assert plan.verdicts[1].state is ContainerState.UNRECORDED


@pytest.mark.parametrize(
    ("pods", "detail"),
    [
        (PodReport(pods=2, ready=0), "2 pod(s), none Ready"),
        (PodReport(pods=0, ready=0), "no pod yet"),
        (PodReport(pods=1, ready=1, images={"other": D1}), "1 Ready pod(s), no imageID reported"),
        (None, "pods not read"),
    ],
)
def test_no_usable_pod_records_nothing_and_waits(pods: PodReport | None, detail: str) -> None:
    w = two_containers(app=f"{IMAGE}@{D1}")
    plan = plan_workload(w, {"app": manifest(D1), "side": manifest(D2)}, pods)
    assert plan.action is None
    assert plan.verdicts[1].state is ContainerState.WAITING
    assert plan.verdicts[1].detail == detail
    assert plan.verdicts[1].current == D2  # what the registry says is still shown


def test_one_waiting_container_holds_the_whole_adoption() -> None:
    w = two_containers()
    plan = plan_workload(w, {"app": manifest(D1), "side": manifest(D2)}, running(app=D1))
    assert [v.state for v in plan.verdicts] == [ContainerState.UNRECORDED, ContainerState.WAITING]
    assert plan.action is None


def test_a_rollout_records_the_waiting_containers_at_the_digest_the_new_pods_pull() -> None:
    w = two_containers(app=f"{IMAGE}@{D1}")
    plan = plan_workload(w, {"app": manifest(D3), "side": manifest(D2)}, PodReport(pods=1, ready=0))
    assert isinstance(plan.action, Rollout)
    assert plan.action.changes == (DigestChange("app", IMAGE, D1, D3),)
    assert plan.action.records == {"app": f"{IMAGE}@{D3}", "side": f"{SIDECAR}@{D2}"}


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_scaled_to_zero_is_adopted_at_the_registry_digest_without_asking_pods(kind: str) -> None:
    obj = workload_object(kind=kind)
    if kind == "DaemonSet":
        obj["status"] = {"desiredNumberScheduled": 0}
    else:
        obj["spec"]["replicas"] = 0
    w = parse_workload(kind, obj)
    assert not needs_running_digests(w, {"app": manifest(D1)})
    plan = plan_workload(w, {"app": manifest(D1)})
    assert isinstance(plan.action, Adoption)
    assert plan.action.records == {"app": f"{IMAGE}@{D1}"}
    assert plan.verdicts[0].detail == "scaled to zero"


def test_a_ready_pod_whose_image_id_is_no_registry_digest_lets_adoption_proceed() -> None:
    w = parse_workload("Deployment", workload_object())
    plan = plan_workload(w, {"app": manifest(D1)}, running(app=None))
    assert isinstance(plan.action, Adoption)
    assert plan.verdicts[0].state is ContainerState.UNRECORDED


def test_adoption_when_pods_run_the_index_digest_or_one_of_its_platform_digests() -> None:
    w = parse_workload("Deployment", workload_object())
    index = manifest(D1, P_AMD64, P_ARM64)
    for digest in (D1, P_ARM64):
        plan = plan_workload(w, {"app": index}, running(app=digest))
        assert isinstance(plan.action, Adoption), digest
        assert plan.action.records == {"app": f"{IMAGE}@{D1}"}  # the index digest is what is recorded


def test_rollout_when_pods_run_another_digest() -> None:
    w = parse_workload("Deployment", workload_object())
    plan = plan_workload(w, {"app": manifest(D1, P_AMD64)}, running(app=D2))
    assert isinstance(plan.action, Rollout)
    assert plan.action.changes == (DigestChange("app", IMAGE, D2, D1),)
    assert plan.action.records == {"app": f"{IMAGE}@{D1}"}


def test_recorded_container_ignores_running_digests() -> None:
    w = parse_workload("Deployment", workload_object(annotations=recorded(app=f"{IMAGE}@{D1}")))
    plan = plan_workload(w, {"app": manifest(D1)}, running(app=D2))
    assert plan.action is None


def test_record_for_another_image_counts_as_unrecorded() -> None:
    # The spec's image changed while the webhook was down: the old record says nothing about it.
    w = parse_workload("Deployment", workload_object(annotations=recorded(app=f"{SIDECAR}@{D1}")))
    plan = plan_workload(w, {"app": manifest(D2)}, running(app=D2))
    assert isinstance(plan.action, Adoption)
    assert plan.action.records == {"app": f"{IMAGE}@{D2}"}


def test_garbage_record_counts_as_unrecorded() -> None:
    w = parse_workload("Deployment", workload_object(annotations=recorded(app="not a record")))
    assert isinstance(plan_workload(w, {"app": manifest(D2)}, running(app=D2)).action, Adoption)


def test_pinned_and_invalid_images_are_not_looked_up_and_plan_nothing() -> None:
    w = two_containers()
    plan = plan_workload(
        w,
        {"app": Unchecked("pinned by digest", pinned=True), "side": Unchecked("invalid image reference: x")},
    )
    assert plan.action is None
    assert [v.state for v in plan.verdicts] == [ContainerState.PINNED, ContainerState.ERROR]


def test_paused_deployment_is_skipped_even_when_its_tag_moved() -> None:
    obj = workload_object(paused=True, annotations=recorded(app=f"{IMAGE}@{D1}"))
    plan = plan_workload(parse_workload("Deployment", obj), {"app": manifest(D2)})
    assert plan.action is None
    assert plan.skipped == "Deployment is paused"
    assert plan.verdicts[0].state is ContainerState.WILL_ROLL  # what it would do once resumed


def test_stale_records_of_removed_containers_are_dropped_with_the_next_patch() -> None:
    w = parse_workload(
        "Deployment", workload_object(annotations=recorded(app=f"{IMAGE}@{D1}", gone=f"{IMAGE}@{D1}"))
    )
    assert plan_workload(w, {"app": manifest(D1)}).action is None  # no patch only for that
    plan = plan_workload(w, {"app": manifest(D2)})
    assert isinstance(plan.action, Rollout)
    assert plan.action.stale == ("gone",)


def test_init_containers_are_planned_like_containers() -> None:
    obj = workload_object(
        init_containers=[("init", SIDECAR)], annotations=recorded(app=f"{IMAGE}@{D1}", init=f"{SIDECAR}@{D1}")
    )
    plan = plan_workload(parse_workload("StatefulSet", obj), {"app": manifest(D1), "init": manifest(D2)})
    assert isinstance(plan.action, Rollout)
    assert [c.container for c in plan.action.changes] == ["init"]


def test_needs_running_digests_only_for_resolved_unrecorded_containers() -> None:
    w = two_containers(app=f"{IMAGE}@{D1}")
    assert needs_running_digests(w, {"app": manifest(D1), "side": manifest(D2)})
    assert not needs_running_digests(w, {"app": manifest(D1), "side": UnreachableError("down")})
    full = two_containers(app=f"{IMAGE}@{D1}", side=f"{SIDECAR}@{D2}")
    assert not needs_running_digests(full, {"app": manifest(D1), "side": manifest(D2)})


def test_plan_cycle_keys_by_workload() -> None:
    a = parse_workload("Deployment", workload_object(name="a", annotations=recorded(app=f"{IMAGE}@{D1}")))
    b = parse_workload("Deployment", workload_object(name="b", annotations=recorded(app=f"{IMAGE}@{D1}")))
    plans = plan_cycle([a, b], {a.key: {"app": manifest(D1)}, b.key: {"app": manifest(D2)}})
    assert [p.action is None for p in plans] == [True, False]
