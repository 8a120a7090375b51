"""Planning and patch building: which requests are touched, what is resolved, what the patch does."""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from autorollout.patches import annotation_operations
from tests.unit.webhook_samples import DIGEST_A, DIGEST_B, DIGEST_C, body, changed, review, workload
from webhook.mutation import Baseline, decide, plan_admission
from webhook.policy import PullPolicyMode
from webhook.review import AdmissionRequest, ReviewError, parse_review

pytestmark = pytest.mark.unit

APP = "reg.example:5000/team/app:latest"
SIDE = "reg.example:5000/team/side:main"
SETUP = "reg.example:5000/team/setup:v1"


def request_for(obj: dict[str, Any] | None, **kwargs: Any) -> AdmissionRequest:
    return parse_review(body(review(obj, **kwargs)))


def three_containers(**kwargs: Any) -> dict[str, Any]:
    return workload(containers=[("app", APP), ("side", SIDE)], init=[("setup", SETUP)], **kwargs)


def patched(obj: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(obj, operations)
    return result


@pytest.mark.parametrize(
    "request_",
    [
        request_for(workload(labels={})),
        request_for(workload(labels={"kube-autorollout/enabled": "false"})),
        request_for(workload(), kind="ReplicaSet"),
        request_for(workload(), version="v1beta2"),
        request_for(workload(), group="extensions"),
        request_for(workload(), operation="DELETE"),
        request_for(workload(), operation="CONNECT"),
        request_for(workload(), operation="UPDATE", old=workload(), sub_resource="scale"),
        request_for(None, group="", kind="Pod"),
    ],
)
def test_everything_but_labeled_apps_v1_workloads_is_left_alone(request_: AdmissionRequest) -> None:
    assert plan_admission(request_) is None


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "DaemonSet"])
def test_create_resolves_every_unpinned_container_and_init_container(kind: str) -> None:
    obj = workload(
        kind,
        containers=[("app", APP), ("pinned", f"reg.example:5000/team/db@{DIGEST_C}")],
        init=[("setup", SETUP)],
    )
    plan = plan_admission(request_for(obj))
    assert plan is not None
    assert plan.baseline is Baseline.RESOLVE
    assert [c.name for c in plan.lookups] == ["setup", "app"]


def test_create_records_digests_on_workload_metadata_not_the_template() -> None:
    obj = three_containers()
    plan = plan_admission(request_for(obj))
    assert plan is not None
    decision = decide(plan, PullPolicyMode.MUTATE, {"app": DIGEST_A, "side": DIGEST_B, "setup": DIGEST_C})
    assert decision.warnings == []
    assert decision.operations == [
        {
            "op": "add",
            "path": "/metadata/annotations",
            "value": {
                "digest.kube-autorollout/setup": f"{SETUP}@{DIGEST_C}",
                "digest.kube-autorollout/app": f"{APP}@{DIGEST_A}",
                "digest.kube-autorollout/side": f"{SIDE}@{DIGEST_B}",
            },
        }
    ]
    result = patched(obj, decision.operations)
    assert result["spec"] == obj["spec"]


def test_create_keeps_other_annotations_and_drops_digests_of_unknown_containers() -> None:
    obj = workload(
        containers=[("app", APP)],
        annotations={"team": "a", "digest.kube-autorollout/gone": f"x@{DIGEST_B}"},
    )
    plan = plan_admission(request_for(obj))
    assert plan is not None
    result = patched(obj, decide(plan, PullPolicyMode.MUTATE, {"app": DIGEST_A}).operations)
    assert result["metadata"]["annotations"] == {
        "team": "a",
        "digest.kube-autorollout/app": f"{APP}@{DIGEST_A}",
    }


def test_update_without_template_change_is_left_alone() -> None:
    old = three_containers(annotations={"digest.kube-autorollout/app": f"{APP}@{DIGEST_A}"})
    new = changed(old)
    new["spec"]["replicas"] = 5
    new["metadata"]["labels"]["tier"] = "front"
    assert plan_admission(request_for(new, operation="UPDATE", old=old)) is None


def test_update_with_new_image_records_again_and_drops_removed_containers() -> None:
    old = three_containers(
        annotations={
            "digest.kube-autorollout/app": f"{APP}@{DIGEST_A}",
            "digest.kube-autorollout/side": f"{SIDE}@{DIGEST_B}",
            "digest.kube-autorollout/setup": f"{SETUP}@{DIGEST_C}",
        }
    )
    new = changed(old)
    new_image = "reg.example:5000/team/app:next"
    new["spec"]["template"]["spec"]["containers"] = [
        {"name": "app", "image": new_image, "imagePullPolicy": "Always"}
    ]
    plan = plan_admission(request_for(new, operation="UPDATE", old=old))
    assert plan is not None
    assert [c.name for c in plan.lookups] == ["setup", "app"]
    decision = decide(plan, PullPolicyMode.MUTATE, {"app": DIGEST_B, "setup": DIGEST_C})
    result = patched(new, decision.operations)
    assert result["metadata"]["annotations"] == {
        "digest.kube-autorollout/app": f"{new_image}@{DIGEST_B}",
        "digest.kube-autorollout/setup": f"{SETUP}@{DIGEST_C}",
    }
    # unchanged values cost no operation
    assert all("setup" not in op["path"] for op in decision.operations)


def test_reconciler_rollout_patch_keeps_its_digests_and_resolves_nothing() -> None:
    old = three_containers(annotations={"digest.kube-autorollout/app": f"{APP}@{DIGEST_A}"})
    new = changed(old)
    new["metadata"]["annotations"]["digest.kube-autorollout/app"] = f"{APP}@{DIGEST_B}"
    new["spec"]["template"]["metadata"]["annotations"] = {
        "kube-autorollout/restartedAt": "2025-01-01T00:00:00Z"
    }
    plan = plan_admission(request_for(new, operation="UPDATE", old=old))
    assert plan is not None
    assert plan.baseline is Baseline.KEEP
    assert plan.lookups == []
    decision = decide(plan, PullPolicyMode.MUTATE)
    assert decision.operations == []
    assert decision.warnings == []


def test_rollout_restart_by_a_user_records_again() -> None:
    old = three_containers(annotations={"digest.kube-autorollout/app": f"{APP}@{DIGEST_A}"})
    new = changed(old)
    new["spec"]["template"]["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"
    }
    plan = plan_admission(request_for(new, operation="UPDATE", old=old))
    assert plan is not None
    assert plan.baseline is Baseline.RESOLVE
    assert len(plan.lookups) == 3


def test_update_needs_the_old_object() -> None:
    with pytest.raises(ReviewError, match="oldObject"):
        plan_admission(request_for(workload(), operation="UPDATE", old=None))


def test_failed_lookups_are_left_unrecorded_with_a_warning_each() -> None:
    obj = three_containers(annotations={"digest.kube-autorollout/side": f"{SIDE}@{DIGEST_B}"})
    plan = plan_admission(request_for(obj))
    assert plan is not None
    decision = decide(
        plan,
        PullPolicyMode.MUTATE,
        {"app": DIGEST_A},
        {"side": "registry unreachable", "setup": "timed out, 2s budget"},
    )
    result = patched(obj, decision.operations)
    assert result["metadata"]["annotations"] == {"digest.kube-autorollout/app": f"{APP}@{DIGEST_A}"}
    assert decision.warnings == [
        f'kube-autorollout: init container "setup" ({SETUP}): digest not recorded (timed out, 2s budget)',
        f'kube-autorollout: container "side" ({SIDE}): digest not recorded (registry unreachable)',
    ]


def test_long_images_are_shortened_in_warnings() -> None:
    image = "reg.example:5000/" + "/".join(["very-long-path-component"] * 6) + ":latest"
    plan = plan_admission(request_for(workload(containers=[("app", image)])))
    assert plan is not None
    (text,) = decide(plan, PullPolicyMode.MUTATE, {}, {"app": "registry unreachable"}).warnings
    assert len(text) < 120
    assert text.startswith('kube-autorollout: container "app" (reg.example')
    assert text.endswith("...ng-path-component:latest): digest not recorded (registry unreachable)")


def test_invalid_and_pinned_images_are_not_resolved() -> None:
    obj = workload(
        containers=[("bad", "Reg.Example/UPPER:case"), ("pinned", f"reg.example/db@{DIGEST_C}")],
        annotations={"digest.kube-autorollout/pinned": f"reg.example/db:old@{DIGEST_A}"},
    )
    plan = plan_admission(request_for(obj))
    assert plan is not None
    assert plan.lookups == []
    decision = decide(plan, PullPolicyMode.MUTATE)
    assert decision.warnings == [
        'kube-autorollout: container "bad" (Reg.Example/UPPER:case): '
        "invalid image reference, digest not recorded"
    ]
    assert decision.operations == [
        {"op": "remove", "path": "/metadata/annotations/digest.kube-autorollout~1pinned"}
    ]


def test_names_unfit_for_an_annotation_key_are_skipped() -> None:
    plan = plan_admission(request_for(workload(containers=[("no/slash", APP), ("-dash", APP)])))
    assert plan is not None
    assert plan.lookups == []


def test_policy_and_digest_operations_together() -> None:
    obj = workload(containers=[("app", APP, "IfNotPresent")])
    plan = plan_admission(request_for(obj))
    assert plan is not None
    decision = decide(plan, PullPolicyMode.MUTATE, {"app": DIGEST_A})
    result = patched(obj, decision.operations)
    assert result["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    assert result["metadata"]["annotations"] == {"digest.kube-autorollout/app": f"{APP}@{DIGEST_A}"}
    assert len(decision.warnings) == 1


def test_deny_answers_without_operations() -> None:
    obj = workload(containers=[("app", APP, "IfNotPresent")])
    plan = plan_admission(request_for(obj))
    assert plan is not None
    decision = decide(plan, PullPolicyMode.DENY, {"app": DIGEST_A})
    assert decision.operations == []
    assert decision.denial is not None
    assert 'container "app" (IfNotPresent)' in decision.denial


def test_object_without_metadata_gets_metadata_added() -> None:
    ops = annotation_operations(None, {"digest.kube-autorollout/app": "x"}, has_metadata=False)
    assert patched({"spec": {}}, ops) == {
        "spec": {},
        "metadata": {"annotations": {"digest.kube-autorollout/app": "x"}},
    }


def test_annotation_operations_skip_what_is_already_so() -> None:
    current = {"a/b": "1", "c": "2"}
    assert annotation_operations(current, {"a/b": "1", "x": None}) == []
    assert annotation_operations(current, {"a/b": "3", "c": None}) == [
        {"op": "add", "path": "/metadata/annotations/a~1b", "value": "3"},
        {"op": "remove", "path": "/metadata/annotations/c"},
    ]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda o: o["spec"].update(template=[]), "request.object.spec.template must be an object"),
        (lambda o: o["spec"]["template"]["spec"].update(containers={}), "containers must be a list"),
        (
            lambda o: o["spec"]["template"]["spec"]["containers"].append(3),
            r"containers\[1\] must be an object",
        ),
        (lambda o: o["spec"]["template"]["spec"]["containers"][0].update(image=7), r"containers\[0\].image"),
        (lambda o: o["metadata"].update(annotations=[]), "metadata.annotations must be an object"),
        (
            lambda o: o["spec"]["template"]["spec"].update(imagePullSecrets={}),
            "imagePullSecrets must be a list",
        ),
    ],
)
def test_malformed_workloads_are_review_errors_naming_the_field(mutate: Any, reason: str) -> None:
    obj = workload()
    mutate(obj)
    with pytest.raises(ReviewError, match=reason):
        plan_admission(request_for(obj))


def test_pull_secret_names_are_collected() -> None:
    plan = plan_admission(request_for(workload(pull_secrets=["one", "two"])))
    assert plan is not None
    assert plan.pull_secret_names == ("one", "two")
